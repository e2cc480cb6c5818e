package master

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tockd/tock/httpapi"
)

// Connz is GET /connz: client connections in nats-server's shape and JSON
// types, so that NATS' tools (nats-top, prometheus-nats-exporter) decode
// it (docs/monitoring.md).
type Connz struct {
	ID       string     `json:"server_id"`
	Now      time.Time  `json:"now"`
	NumConns int        `json:"num_connections"` // entries in Conns
	Total    int        `json:"total"`           // connections matching, before paging
	Offset   int        `json:"offset"`
	Limit    int        `json:"limit"`
	Conns    []ConnInfo `json:"connections"` // never null
}

// ConnInfo is one connection, open or closed. Strings that NATS' exporter
// reads as labels are always present, empty when unknown.
type ConnInfo struct {
	Cid          uint64     `json:"cid"`
	Kind         string     `json:"kind"` // "Client"
	Type         string     `json:"type"` // "ztick": the line protocol
	IP           string     `json:"ip"`
	Port         int        `json:"port"`
	Start        time.Time  `json:"start"`
	LastActivity time.Time  `json:"last_activity"`
	Stop         *time.Time `json:"stop,omitempty"`   // closed only
	Reason       string     `json:"reason,omitempty"` // closed only
	RTT          string     `json:"rtt"`              // "0s": tock does not ping clients
	Uptime       string     `json:"uptime"`
	Idle         string     `json:"idle"`
	Pending      int        `json:"pending_bytes"` // reply bytes not yet written
	InMsgs       int64      `json:"in_msgs"`       // request lines read
	OutMsgs      int64      `json:"out_msgs"`      // reply lines written
	InBytes      int64      `json:"in_bytes"`
	OutBytes     int64      `json:"out_bytes"`
	NumSubs      uint32     `json:"subscriptions"` // always 0
	Name         string     `json:"name"`          // the auth token's name
	NameTag      string     `json:"name_tag"`
	Lang         string     `json:"lang"`
	Version      string     `json:"version"`
	TLSVersion   string     `json:"tls_version"`
	TLSCipher    string     `json:"tls_cipher_suite"`
	Account      string     `json:"account"`
	// AuthorizedUser is the token's name, with auth=1 only; Account is
	// then its namespace.
	AuthorizedUser string    `json:"authorized_user,omitempty"`
	Subs           *[]string `json:"subscriptions_list,omitempty"` // [] with subs=1

	authorizedUser, account string // shown with auth=1
}

// Connz sort keys (nats-server's): cid and start ascending, uptime and
// reason ascending, the others descending.
const (
	sortCid       = "cid"
	sortStart     = "start"
	sortSubs      = "subs"
	sortPending   = "pending"
	sortMsgsTo    = "msgs_to"
	sortMsgsFrom  = "msgs_from"
	sortBytesTo   = "bytes_to"
	sortBytesFrom = "bytes_from"
	sortLast      = "last"
	sortIdle      = "idle"
	sortUptime    = "uptime"
	sortStop      = "stop"
	sortReason    = "reason"
	sortRTT       = "rtt"
)

var connzSorts = []string{sortCid, sortStart, sortSubs, sortPending, sortMsgsTo, sortMsgsFrom,
	sortBytesTo, sortBytesFrom, sortLast, sortIdle, sortUptime, sortStop, sortReason, sortRTT}

// Connz states.
const (
	StateOpen   = "open"
	StateClosed = "closed"
	StateAny    = "any"
)

var connzStates = []string{StateOpen, StateClosed, StateAny, "all"}

// DefaultConnzLimit is /connz's page size when limit is absent or ≤ 0.
const DefaultConnzLimit = 1024

// ConnzOptions select and page /connz.
type ConnzOptions struct {
	Sort   string // one of connzSorts; "" = cid
	Auth   bool   // show authorized_user and namespace
	Subs   bool   // show subscriptions_list (always empty)
	Offset int    // < 0 = 0
	Limit  int    // ≤ 0 = DefaultConnzLimit
	CID    uint64 // only this connection (then Limit = 1)
	State  string // open (default), closed, any
}

// Connz builds /connz.
func (m *Master) Connz(opts ConnzOptions) (*Connz, error) {
	if opts.Sort == "" {
		opts.Sort = sortCid
	}
	if !slices.Contains(connzSorts, opts.Sort) {
		return nil, httpapi.BadRequest("bad sort %q: want one of %s", opts.Sort, strings.Join(connzSorts, ", "))
	}
	switch opts.State {
	case "":
		opts.State = StateOpen
	case "all":
		opts.State = StateAny
	case StateOpen, StateClosed, StateAny:
	default:
		return nil, httpapi.BadRequest("bad state %q: want open, closed or any", opts.State)
	}
	if (opts.Sort == sortStop || opts.Sort == sortReason) && opts.State != StateClosed {
		return nil, httpapi.BadRequest("sort by %s is only valid with state=closed", opts.Sort)
	}
	opts.Offset = max(opts.Offset, 0)
	if opts.Limit <= 0 {
		opts.Limit = DefaultConnzLimit
	}
	if opts.CID > 0 {
		opts.Limit = 1
	}
	now := time.Now().UTC()
	// Pointers: sorting 10,000 closed entries moves pointers, not structs.
	var conns []*ConnInfo
	if opts.State != StateClosed {
		for _, cc := range m.conns.snapshot() {
			if opts.CID == 0 || cc.id == opts.CID {
				ci := cc.info(now)
				conns = append(conns, &ci)
			}
		}
	}
	if opts.State != StateOpen {
		closed := m.closedConns.list()
		for i := range closed {
			if opts.CID == 0 || closed[i].Cid == opts.CID {
				conns = append(conns, &closed[i])
			}
		}
	}
	sortConns(conns, opts.Sort, now)
	total := len(conns)
	lo := min(opts.Offset, total)
	hi := lo + min(opts.Limit, total-lo)
	page := make([]ConnInfo, 0, hi-lo)
	for _, ci := range conns[lo:hi] {
		page = append(page, *ci)
	}
	for i := range page {
		ci := &page[i]
		if opts.Auth {
			ci.AuthorizedUser, ci.Account = ci.authorizedUser, ci.account
		}
		if opts.Subs {
			ci.Subs = &[]string{}
		}
	}
	return &Connz{ID: m.serverID, Now: now, NumConns: len(page), Total: total,
		Offset: opts.Offset, Limit: opts.Limit, Conns: page}, nil
}

// sortConns orders conns by key as nats-server does; ties by cid.
func sortConns(conns []*ConnInfo, key string, now time.Time) {
	uptime := func(c *ConnInfo) time.Duration {
		if c.Stop != nil {
			return c.Stop.Sub(c.Start)
		}
		return now.Sub(c.Start)
	}
	// by returns a comparison on one figure; desc reverses it.
	by := func(desc bool, f func(c *ConnInfo) int64) func(a, b *ConnInfo) int {
		return func(a, b *ConnInfo) int {
			x, y := f(a), f(b)
			if x == y {
				return cmpU64(a.Cid, b.Cid)
			}
			if (x < y) != desc {
				return -1
			}
			return 1
		}
	}
	var cmp func(a, b *ConnInfo) int
	switch key {
	case sortCid, sortStart:
		cmp = func(a, b *ConnInfo) int { return cmpU64(a.Cid, b.Cid) }
	case sortSubs, sortRTT:
		cmp = by(true, func(c *ConnInfo) int64 { return 0 })
	case sortPending:
		cmp = by(true, func(c *ConnInfo) int64 { return int64(c.Pending) })
	case sortMsgsTo:
		cmp = by(true, func(c *ConnInfo) int64 { return c.OutMsgs })
	case sortMsgsFrom:
		cmp = by(true, func(c *ConnInfo) int64 { return c.InMsgs })
	case sortBytesTo:
		cmp = by(true, func(c *ConnInfo) int64 { return c.OutBytes })
	case sortBytesFrom:
		cmp = by(true, func(c *ConnInfo) int64 { return c.InBytes })
	case sortLast:
		cmp = by(true, func(c *ConnInfo) int64 { return c.LastActivity.UnixNano() })
	case sortIdle:
		cmp = by(true, func(c *ConnInfo) int64 { return int64(now.Sub(c.LastActivity)) })
	case sortUptime:
		cmp = by(false, func(c *ConnInfo) int64 { return int64(uptime(c)) })
	case sortStop:
		cmp = by(true, func(c *ConnInfo) int64 {
			if c.Stop == nil {
				return math.MinInt64
			}
			return c.Stop.UnixNano()
		})
	case sortReason:
		cmp = func(a, b *ConnInfo) int {
			if c := strings.Compare(a.Reason, b.Reason); c != 0 {
				return c
			}
			return cmpU64(a.Cid, b.Cid)
		}
	}
	slices.SortStableFunc(conns, cmp)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// serveConnz is GET /connz.
func (m *Master) serveConnz(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var opts ConnzOptions
	var err error
	if opts.Sort, err = httpapi.QueryEnum(q, "sort", sortCid, connzSorts); err != nil {
		return err
	}
	if opts.Auth, err = httpapi.QueryBool(q, "auth", false); err != nil {
		return err
	}
	// As nats-server: subs=detail asks for subscription details (tock has
	// no subscriptions, so it is subs=1), and state is read in any case.
	if strings.EqualFold(q.Get("subs"), "detail") {
		opts.Subs = true
	} else if opts.Subs, err = httpapi.QueryBool(q, "subs", false); err != nil {
		return err
	}
	if opts.Offset, err = httpapi.QueryInt(q, "offset", 0, math.MinInt, math.MaxInt); err != nil {
		return err
	}
	if opts.Limit, err = httpapi.QueryInt(q, "limit", DefaultConnzLimit, math.MinInt, math.MaxInt); err != nil {
		return err
	}
	if opts.CID, err = httpapi.QueryUint64(q, "cid", 0); err != nil {
		return err
	}
	if q.Has("state") {
		q.Set("state", strings.ToLower(q.Get("state")))
	}
	if opts.State, err = httpapi.QueryEnum(q, "state", StateOpen, connzStates); err != nil {
		return err
	}
	cz, err := m.Connz(opts)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, cz)
	return nil
}

// natsDuration renders d as nats-server renders uptimes: whole seconds,
// with minutes, hours, days and years as needed ("1h2m3s", "3d0h0m5s").
func natsDuration(d time.Duration) string {
	secs := int64(max(d, 0) / time.Second)
	mins, hours, days := secs/60, secs/3600, secs/86400
	years := days / 365
	var b strings.Builder
	put := func(n int64, unit byte) {
		b.WriteString(strconv.FormatInt(n, 10))
		b.WriteByte(unit)
	}
	switch {
	case years > 0:
		put(years, 'y')
		put(days%365, 'd')
		put(hours%24, 'h')
		put(mins%60, 'm')
	case days > 0:
		put(days, 'd')
		put(hours%24, 'h')
		put(mins%60, 'm')
	case hours > 0:
		put(hours, 'h')
		put(mins%60, 'm')
	case mins > 0:
		put(mins, 'm')
	}
	put(secs%60, 's')
	return b.String()
}
