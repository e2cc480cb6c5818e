package cluster

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bucket names (docs/scale-out.md, "What is in NATS").
func OwnersBucket(cluster string) string { return "tock_" + cluster + "_owners" }
func HostsBucket(cluster string) string  { return "tock_" + cluster + "_hosts" }
func RulesBucket(cluster string) string  { return "tock_" + cluster + "_rules" }

// ShardKey is shard n's key in the owners bucket: shard.NNN.
func ShardKey(n int) string { return fmt.Sprintf("shard.%03d", n) }

// ParseShardKey is ShardKey's inverse; false for any other key.
func ParseShardKey(key string, shards int) (int, bool) {
	rest, ok := strings.CutPrefix(key, "shard.")
	if !ok || len(rest) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= shards || rest[0] == '+' || rest[0] == '-' {
		return 0, false
	}
	return n, true
}

// RuleKey is a rule's key in the rules bucket: its id in base64url without
// padding (bucket keys allow only a few characters; an id allows any).
func RuleKey(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// ParseRuleKey is RuleKey's inverse.
func ParseRuleKey(key string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("rule key %q: %w", key, err)
	}
	return string(b), nil
}

// LeaseValue is a lease's value: who serves the shard, at which epoch, and
// where other hosts forward its requests.
type LeaseValue struct {
	Host  string `json:"host"`
	Epoch uint64 `json:"epoch"`
	Addr  string `json:"addr"`
}

// Encode marshals v.
func (v LeaseValue) Encode() []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cluster: marshal lease value: %v", err)) // plain strings and a number cannot fail
	}
	return b
}

// DecodeLease reads a lease value written by any host (so it is checked).
func DecodeLease(b []byte) (LeaseValue, error) {
	var v LeaseValue
	if err := json.Unmarshal(b, &v); err != nil {
		return LeaseValue{}, fmt.Errorf("lease value: %w", err)
	}
	if v.Host == "" {
		return LeaseValue{}, errors.New("lease value: no host")
	}
	return v, nil
}

// Member is a live host, as it announces itself in the hosts bucket.
type Member struct {
	Host string `json:"host"`
	// Addr is where other hosts forward requests (jetstream.advertise).
	Addr string `json:"addr"`
	// Client and HTTP are its client and HTTP listeners, for operators.
	Client  string    `json:"client,omitempty"`
	HTTP    string    `json:"http,omitempty"`
	Started time.Time `json:"started"`
}

// Encode marshals m.
func (m Member) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("cluster: marshal member: %v", err))
	}
	return b
}

// DecodeMember reads a hosts bucket value.
func DecodeMember(b []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return Member{}, fmt.Errorf("member value: %w", err)
	}
	if m.Host == "" {
		return Member{}, errors.New("member value: no host")
	}
	return m, nil
}
