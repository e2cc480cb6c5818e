package ipc

import (
	"encoding/json"
	"fmt"

	"github.com/tockd/tock/store"
)

// Hello is the worker's first frame.
type Hello struct {
	Proto   int    `json:"proto"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Index   int    `json:"index"`
	Phase   int    `json:"phase"`
}

// Settings is what a worker needs to know of the cluster configuration.
type Settings struct {
	DataDir             string   `json:"data_dir"`
	Persistence         string   `json:"persistence"`
	Fsync               string   `json:"fsync"`
	Framerate           int      `json:"framerate"`
	CompressionInterval int      `json:"compression_interval"` // seconds, 0 = size-triggered only
	NumShards           int      `json:"num_shards"`
	CheckIntervalNs     int64    `json:"check_interval_ns"`
	MaxInflight         int      `json:"max_inflight"`
	ExecutionTimeoutNs  int64    `json:"execution_timeout_ns"`
	ShellPath           string   `json:"shell_path"`
	ShellArgs           []string `json:"shell_args"`
	AuthEnabled         bool     `json:"auth_enabled"`
	TLSEnabled          bool     `json:"tls_enabled"`
	// JetStream is set when Persistence is "jetstream": how the worker
	// reaches the NATS servers that hold its shards' streams.
	JetStream *JetStreamSettings `json:"jetstream,omitempty"`
}

// JetStreamSettings is the [jetstream] section as a worker needs it.
type JetStreamSettings struct {
	URLs        []string `json:"urls"`
	ClusterName string   `json:"cluster_name"`
	Replicas    int      `json:"replicas"`
	HostName    string   `json:"host_name"`
	TLSCA       string   `json:"tls_ca,omitempty"`
	TLSCert     string   `json:"tls_cert,omitempty"`
	TLSKey      string   `json:"tls_key,omitempty"`
	Creds       string   `json:"creds,omitempty"`
	User        string   `json:"user,omitempty"`
	Password    string   `json:"password,omitempty"`
	Token       string   `json:"token,omitempty"`
}

// Welcome answers Hello: the worker's settings, shards and the rule set.
type Welcome struct {
	Index    int          `json:"index"`
	Phase    int          `json:"phase"`
	Settings Settings     `json:"settings"`
	Shards   []int        `json:"shards"`
	Running  []RunningJob `json:"running,omitempty"`
	Rules    Rules        `json:"rules"`
	// Epoch is the owner epoch the worker opens Shards at (see Acquire).
	Epoch uint64 `json:"epoch,omitempty"`
}

// RunningJob is an execution still running in another (draining) worker;
// the new owner of its shard must not start it again and records its outcome
// when it arrives as an Outcome message.
type RunningJob struct {
	Shard     int    `json:"shard"`
	JobID     string `json:"job_id"`
	Execution int64  `json:"execution"`
}

// Ready reports that the listed shards are open and replayed. A non-empty
// Error means opening failed; ShardErrors names the failing shards.
type Ready struct {
	// Seq is the Acquire's, echoed (0 for the boot's Ready).
	Seq         uint64         `json:"seq,omitempty"`
	Shards      []int          `json:"shards"`
	Error       string         `json:"error,omitempty"`
	ShardErrors map[int]string `json:"shard_errors,omitempty"`
	// Epochs is the epoch each shard was opened at, when the log decides
	// it (persistence = "jetstream": the fence's epoch, at least the
	// Acquire's); the master puts it in the shard's lease.
	Epochs map[int]uint64 `json:"epochs,omitempty"`
}

// Rules is the whole rule set at Version.
type Rules struct {
	Version uint64       `json:"version"`
	Rules   []store.Rule `json:"rules"`
}

// RulesAck confirms a rule set has been applied.
type RulesAck struct {
	Version uint64 `json:"version"`
}

// Acquire asks a worker to open and replay shards; it answers Ready.
type Acquire struct {
	Shards  []int        `json:"shards"`
	Running []RunningJob `json:"running,omitempty"`
	// Epoch fences the shards: the master gives every owner it hands a
	// shard to a higher epoch than any before, the worker records it in the
	// shard file, and a file recorded at a higher epoch refuses to open (a
	// stale owner cannot write over a newer one).
	Epoch uint64 `json:"epoch,omitempty"`
	// Seq is echoed in the Ready, so the master matches answers to
	// requests (a late or duplicated answer is dropped).
	Seq uint64 `json:"seq,omitempty"`
}

// Prepare asks a worker to read shards it is about to acquire while their
// owner still writes them, in the background; an Acquire then reads only
// what was written since, so requests are held for a short catch-up instead
// of a whole replay. It answers Prepared.
type Prepare struct {
	Shards []int `json:"shards"`
}

// Prepared confirms a Prepare (a shard that could not be read ahead is
// simply replayed whole on Acquire).
type Prepared struct {
	Shards []int `json:"shards"`
}

// Release asks a worker to answer what it has, flush and close shards; it
// answers Released. Requests for released shards get KindNotOwned.
type Release struct {
	Shards []int `json:"shards"`
	// Seq is echoed in the Released.
	Seq uint64 `json:"seq,omitempty"`
	// DrainNs > 0 (a planned hand-over to another host): the worker stops
	// triggering the shards' jobs and waits up to DrainNs for their
	// running executions to end and their outcomes to be written before
	// it closes them; what still runs then is listed in Released.Running.
	DrainNs int64 `json:"drain_ns,omitempty"`
}

// Released confirms a Release. Running lists executions of those shards still
// running in this worker; their outcomes follow as Outcome messages.
type Released struct {
	// Seq is the Release's, echoed.
	Seq     uint64       `json:"seq,omitempty"`
	Shards  []int        `json:"shards"`
	Running []RunningJob `json:"running,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// Shutdown asks a worker to stop: finish executions for up to TimeoutNs,
// flush, and exit.
type Shutdown struct {
	TimeoutNs int64 `json:"timeout_ns"`
}

// Call is a control query answered by CallReply with the same ID.
type Call struct {
	ID     uint64 `json:"id"`
	Method string `json:"method"` // "gc-stats", "backtraces", "compact"
}

// CallReply answers a Call.
type CallReply struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Outcome carries an execution result between workers through the master
// (old owner → master → new owner during a handoff).
type Outcome struct {
	Shard     int           `json:"shard"`
	JobID     string        `json:"job_id"`
	Execution int64         `json:"execution"`
	Outcome   store.Outcome `json:"outcome"`
	// Requeue: the execution never started (its worker stopped first);
	// the owner plans the job again instead of recording an outcome.
	Requeue bool `json:"requeue,omitempty"`
}

// Status is a worker's last_status, sent as its heartbeat. Field names are
// those of the stats tree (docs/stats.md).
type Status struct {
	// UptimeNs is the time since the worker process started.
	UptimeNs int64 `json:"uptime_ns"`
	// JobsTotal .. JobsFailed count the jobs of the worker's shards by status.
	JobsTotal     int64 `json:"jobs_total"`
	JobsPlanned   int64 `json:"jobs_planned"`
	JobsTriggered int64 `json:"jobs_triggered"`
	JobsExecuted  int64 `json:"jobs_executed"`
	JobsFailed    int64 `json:"jobs_failed"`
	// ExecutionsPending are triggered executions waiting for a free slot.
	ExecutionsPending int64 `json:"executions_pending"`
	// ExecutionsInflight are executions running now.
	ExecutionsInflight int64 `json:"executions_inflight"`
	// Persistence is "logfile" or "memory".
	Persistence string `json:"persistence"`
	// Compression is the worst compaction state of the worker's shards:
	// idle, running, success or failure.
	Compression string `json:"compression"`
	// Framerate is the scheduler's ticks per second.
	Framerate int `json:"framerate"`
	// RequestsCount is the number of requests the worker has answered.
	RequestsCount int64 `json:"requests_count"`
	// RSSBytes is the worker's resident set size.
	RSSBytes int64 `json:"rss_bytes"`
	// TriggerLateness describes fire time − scheduled time of every job
	// this worker triggered.
	TriggerLateness Lateness `json:"trigger_lateness"`
	// ShardErrors maps a shard that could not be opened to the reason.
	ShardErrors map[string]string `json:"shard_errors,omitempty"`
	// Fenced lists shards whose log refused a write because another host
	// opened them at a higher epoch. The worker does not reopen them; the
	// master releases them (docs/scale-out.md).
	Fenced []int `json:"fenced,omitempty"`

	// Puma's per-worker fields with tock's meaning, so Puma's stats
	// readers work unchanged (docs/monitoring.md).
	//
	// Backlog = ExecutionsPending.
	Backlog int64 `json:"backlog"`
	// Running = BusyThreads = ExecutionsInflight.
	Running     int64 `json:"running"`
	BusyThreads int64 `json:"busy_threads"`
	// PoolCapacity = MaxThreads − ExecutionsInflight.
	PoolCapacity int64 `json:"pool_capacity"`
	// MaxThreads = execution.max_inflight.
	MaxThreads int64 `json:"max_threads"`

	// Metrics are the worker's figures for /metrics. The master takes them
	// out of the status it keeps, so they never show in /stats.
	Metrics *WorkerMetrics `json:"metrics,omitempty"`
}

// EncodeJSON marshals a control message.
func EncodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("ipc: encode %T: %w", v, err)
	}
	return b, nil
}

// DecodeJSON unmarshals a control message payload into v.
func DecodeJSON(p []byte, v any) error {
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("ipc: decode %T: %w", v, err)
	}
	return nil
}

// Lateness summarises trigger lateness; quantiles are upper bounds within a
// factor of two.
type Lateness struct {
	Count int64 `json:"count"`
	P50Ns int64 `json:"p50_ns"`
	P99Ns int64 `json:"p99_ns"`
	MaxNs int64 `json:"max_ns"`
}

// WorseCompression returns the worse of two compaction states, ordered
// failure > running > success > idle: the one a summary (STAT, a worker's
// status) shows.
func WorseCompression(a, b string) string {
	rank := map[string]int{"idle": 0, "success": 1, "running": 2, "failure": 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
