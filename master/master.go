package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/internal/systemd"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// Version is set by cmd/tock.
var Version = "dev"

// maxHeldPerShard bounds the requests waiting for an unavailable shard.
const maxHeldPerShard = 100000

// Options are the master's inputs besides the configuration.
type Options struct {
	// Exe is the binary workers are started from (re-read at every start,
	// so a phased restart picks up a newly deployed binary).
	Exe string
	// WorkerArgs are extra arguments for `tock worker` (log settings).
	WorkerArgs []string
	// Listener, when set, is used instead of binding Controller.Listen
	// (inherited across a master restart, or from systemd).
	Listener net.Listener
	// HTTPListener, when set, is used instead of binding [http] listen
	// (inherited across a master restart, or from systemd).
	HTTPListener net.Listener
	// HTTPRoutes are route groups added to the HTTP listener beside the
	// monitoring endpoints (the REST API); see HTTPRoutes.
	HTTPRoutes []HTTPRoutes
	// ControlListener, when set, is a control listener inherited from
	// systemd (or across a restart): a Unix one replaces
	// <data_dir>/control.sock (the master then neither creates nor removes
	// that file), a TCP one is served like control.url's and so always
	// wants the token.
	ControlListener net.Listener
	// Notifier tells systemd the master's state; nil outside systemd.
	Notifier *systemd.Notifier
	// WatchdogInterval is how often WATCHDOG=1 is sent (0 = never).
	WatchdogInterval time.Duration
}

// Master is the running master process.
type Master struct {
	cfg  config.Config
	opts Options
	log  hclog.Logger

	router *Router
	spans  *spanning
	// dirLock is the data dir's lock, held from New until Run returns.
	dirLock *store.FileLock
	// js is the JetStream engine (persistence = "jetstream", jetstream.go).
	js     *jslog.Engine
	epochs *epochs
	// spawner starts workers (execSpawner; tests script fake ones).
	spawner Spawner
	// shardState is every shard's handoff state (states.go).
	shardState *shardStates
	// hosts is the lease manager's side in JetStream mode (leases.go);
	// nil otherwise.
	hosts *hostLeases
	rules *ruleSet
	peers *peerSet // links to and from other hosts' masters (peer.go)
	tls   *tls.Config
	// auth is the loaded auth file; nil when auth is off. Swapped on SIGHUP.
	auth atomic.Pointer[tokenStore]
	// listings are the REST listings being answered (a slot each, see
	// maxListings); listWaiting counts those waiting for a slot.
	listings    chan struct{}
	listWaiting atomic.Int32

	listener net.Listener
	// http is the HTTP listener's server; nil when [http] listen is "".
	http     *httpapi.Server
	httpMux  *httpapi.Mux
	httpFile *os.File // the HTTP socket kept for a restart
	started  time.Time
	wd       watchdog // used only by the heartbeat checker's goroutine
	// control is the control server; set by claimControl, which Run calls
	// before anything touches the data dir, and used only by Run's goroutine.
	control *ControlServer
	// controlFile is the inherited control listener's socket once the
	// control server has stopped, for a hot restart (under mu).
	controlFile *os.File

	mu      sync.Mutex
	slots   []*slot
	booting []*proc // started, not yet in a slot
	// live is every worker process started and not yet reaped, wherever it
	// is (booting, in a slot, draining, or removed by a scale down but
	// still finishing its executions): what /stats and /metrics count.
	live       []*proc
	phase      int
	stopping   bool
	halted     bool
	restarting bool
	restart    restartState

	conns         connTable
	requests      atomic.Int64
	acceptStopped atomic.Bool
	connections   atomic.Int64

	monitorState // figures of the monitoring endpoints (monitor.go)

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

// slot is one worker index: its current process and restart history.
type slot struct {
	index    int
	cur      *proc
	shards   []int
	restarts int
	failures int // consecutive failed boots/crashes, for backoff
	// replacing: a crashed worker's replacement is being booted (or waits
	// for its backoff); rollouts and rebalancing leave the slot alone.
	replacing bool
	old       []*proc
	// orphans are shards waiting for this slot's next worker: their owner
	// died while the slot's worker was down (see adoptOrphans).
	orphans []int
}

// New prepares a master: validates the data dir and loads the rule set. It
// starts nothing.
func New(cfg config.Config, opts Options, log hclog.Logger) (*Master, error) {
	m := &Master{
		cfg: cfg, opts: opts, log: log, started: time.Now(),
		router: NewRouter(cfg.Cluster.Shards, maxHeldPerShard, cfg.Cluster.WorkerBootTimeout.Duration),
		spans:  newSpanning(), spawner: execSpawner{}, shardState: newShardStates(cfg.Cluster.Shards),
		stopCh: make(chan struct{}), done: make(chan struct{}),
		listings: make(chan struct{}, maxListings),
	}
	m.peers = newPeerSet(log.Named("peer"), m.router, ipc.PeerHello{Cluster: cfg.JetStream.ClusterName,
		Host: cfg.JetStream.HostName, Proto: ipc.ProtoVersion, PeerProto: ipc.PeerProto, Version: Version},
		cfg.Cluster.WorkerBootTimeout.Duration)
	m.conns.init()
	m.clock.tick(m.started)
	m.configTime = m.started
	m.httpMux = m.newHTTPMux()
	m.wd.every = opts.WatchdogInterval
	epochDir, dir := "", cfg.Database.DataDir
	if dir != "" {
		// First: a second master on this data dir stops here, before it
		// reads or writes anything in it (in memory mode too: the control
		// socket lives there).
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		lock, err := lockDataDir(dir)
		if err != nil {
			return nil, err
		}
		m.dirLock = lock
	}
	if cfg.Database.Persistence != config.PersistenceMemory {
		if err := os.MkdirAll(filepath.Join(dir, "shards"), 0o755); err != nil {
			m.unlockDataDir()
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if err := checkManifest(dir, cfg.Cluster.Shards); err != nil {
			m.unlockDataDir()
			return nil, err
		}
		epochDir = dir
	}
	ep, err := loadEpochs(epochDir)
	if err != nil {
		m.unlockDataDir()
		return nil, err
	}
	m.epochs = ep
	id, err := loadServerID(cfg)
	if err != nil {
		m.unlockDataDir()
		return nil, err
	}
	m.serverID = id
	rules, err := openRuleSet(cfg, log.Named("rules"))
	if err != nil {
		m.unlockDataDir()
		return nil, err
	}
	m.rules = rules
	if cfg.Controller.AuthFile != "" {
		ts, err := loadAuthFile(cfg.Controller.AuthFile)
		if err != nil {
			m.unlockDataDir()
			return nil, err
		}
		m.auth.Store(ts)
	}
	if cfg.Controller.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Controller.TLSCert, cfg.Controller.TLSKey)
		if err != nil {
			m.unlockDataDir()
			return nil, fmt.Errorf("load tls certificate: %w", err)
		}
		m.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return m, nil
}

// Addr is the client listener's address (after Start).
func (m *Master) Addr() net.Addr { return m.listener.Addr() }

// Run starts the workers and the listener and serves until ctx is done or
// Stop is called; it then stops the cluster gracefully.
func (m *Master) Run(ctx context.Context) error {
	defer close(m.done)
	defer m.unlockDataDir()
	if err := m.listen(); err != nil {
		return err
	}
	if err := m.listenHTTP(); err != nil {
		m.listener.Close()
		return err
	}
	// Claiming control.sock first refuses a second master on the same data
	// dir before it writes the pid file or opens a shard.
	if err := m.claimControl(); err != nil {
		m.closeListeners()
		return err
	}
	if err := m.writePID(); err != nil {
		m.closeListeners()
		m.stopControl()
		return err
	}
	if err := m.startJetStream(ctx); err != nil {
		m.closeListeners()
		m.stopControl()
		return err
	}
	defer m.stopJetStream()
	if err := m.startHosts(ctx); err != nil {
		m.closeListeners()
		m.stopControl()
		return err
	}
	if err := m.bootWorkers(); err != nil {
		m.closeListeners()
		m.stopWorkers(0)
		m.stopHosts(0, false)
		m.stopControl()
		return err
	}
	// The peer listener before the lease loop: routes it announces point
	// at peers.
	if err := m.startPeers(); err != nil {
		m.closeListeners()
		m.stopWorkers(0)
		m.stopHosts(0, false)
		m.stopControl()
		return err
	}
	m.runHosts()
	if err := m.startControl(); err != nil {
		m.closeListeners()
		m.stopHosts(0, false)
		m.stopPeers(0)
		m.stopWorkers(0)
		m.stopControl()
		return err
	}
	m.startHTTP()
	m.wg.Add(2)
	go m.acceptLoop()
	go m.housekeeping()
	m.log.Info("tock is ready", "listen", m.listener.Addr().String(), "http", m.httpAddrString(), "workers", len(m.slots),
		"shards", m.cfg.Cluster.Shards, "data_dir", m.cfg.Database.DataDir, "persistence", m.cfg.Database.Persistence)
	m.sdNotify(systemd.Ready)
	select {
	case <-ctx.Done():
	case <-m.stopCh:
	}
	m.mu.Lock()
	halted, restarting := m.halted, m.restarting
	m.mu.Unlock()
	if restarting {
		// The re-executed master (same pid) sends READY=1 again.
		m.sdNotify(systemd.Reloading)
	} else {
		m.sdNotify(systemd.Stopping)
	}
	if halted {
		m.stopHTTP(false)
		m.stopControl()
		m.log.Info("halted")
		return ErrHalted
	}
	m.shutdown(restarting)
	if restarting {
		return ErrRestart
	}
	return nil
}

// unlockDataDir releases the data dir's lock (a master re-executing
// itself takes it again in its new image).
func (m *Master) unlockDataDir() {
	if err := m.dirLock.Unlock(); err != nil {
		m.log.Warn("unlock data dir", "error", err)
	}
	m.dirLock = nil
}

// Stop asks Run to stop gracefully.
func (m *Master) Stop() { m.stopOnce.Do(func() { close(m.stopCh) }) }

// Done is closed when Run has returned.
func (m *Master) Done() <-chan struct{} { return m.done }

func (m *Master) listen() error {
	if m.opts.Listener != nil {
		m.listener = m.opts.Listener
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.Controller.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.cfg.Controller.Listen, err)
	}
	m.listener = ln
	return nil
}

// closeListeners closes the client and HTTP listeners after a failed start.
func (m *Master) closeListeners() {
	m.listener.Close()
	if m.http != nil {
		m.stopHTTP(false)
	}
}

func (m *Master) writePID() error {
	if m.cfg.Database.Persistence == config.PersistenceMemory {
		return nil
	}
	path := filepath.Join(m.cfg.Database.DataDir, "tock.pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// shutdown: stop accepting, answer what is in flight, drain the workers.
func (m *Master) shutdown(keepListener bool) {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.log.Info("stopping: no new connections, draining")
	if keepListener {
		m.stopAccepting()
	} else if err := m.listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		m.log.Warn("close listener", "error", err)
	}
	m.conns.closeReads()
	m.conns.wait(m.cfg.Cluster.WorkerShutdownTimeout.Duration)
	m.stopHosts(m.cfg.Cluster.WorkerShutdownTimeout.Duration, keepListener)
	m.stopPeers(m.cfg.Cluster.WorkerShutdownTimeout.Duration)
	m.stopWorkers(m.cfg.Cluster.WorkerShutdownTimeout.Duration)
	m.conns.closeAll()
	m.stopHTTP(keepListener)
	m.stopControl()
	m.wg.Wait()
	if err := m.rules.close(); err != nil {
		m.log.Error("close rules log", "error", err)
	}
	if m.cfg.Database.Persistence != config.PersistenceMemory && !keepListener {
		os.Remove(filepath.Join(m.cfg.Database.DataDir, "tock.pid"))
	}
	m.log.Info("stopped")
}

// housekeeping expires held requests and, in its own goroutine so nothing
// in the router can delay it, checks heartbeats.
func (m *Master) housekeeping() {
	defer m.wg.Done()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.every(100*time.Millisecond, func(now time.Time) {
			m.checkHeartbeats(now)
			m.watchdogTick(now)
		})
	}()
	m.every(100*time.Millisecond, func(now time.Time) {
		m.clock.tick(now)
		m.router.Expire(now)
	})
}

// every calls fn every d until the master stops.
func (m *Master) every(d time.Duration, fn func(time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-m.stopCh:
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// settings is what every worker is told.
func (m *Master) settings() ipc.Settings {
	c := m.cfg
	var js *ipc.JetStreamSettings
	if c.Database.Persistence == config.PersistenceJetStream {
		j := c.JetStream
		js = &ipc.JetStreamSettings{URLs: j.URLs, ClusterName: j.ClusterName, Replicas: j.Replicas, HostName: j.HostName,
			TLSCA: j.TLSCA, TLSCert: j.TLSCert, TLSKey: j.TLSKey, Creds: j.Creds, User: j.User, Password: j.Password, Token: j.Token}
	}
	return ipc.Settings{
		JetStream: js,
		DataDir:   c.Database.DataDir, Persistence: c.Database.Persistence, Fsync: c.Database.Fsync,
		Framerate: c.Database.Framerate, CompressionInterval: c.Database.CompressionInterval,
		NumShards: c.Cluster.Shards, CheckIntervalNs: int64(c.Cluster.WorkerCheckInterval.Duration),
		MaxInflight: c.Execution.MaxInflight, ExecutionTimeoutNs: int64(c.Execution.Timeout.Duration),
		ShellPath: c.Shell.Path, ShellArgs: c.Shell.Args,
		AuthEnabled: c.Controller.AuthFile != "", TLSEnabled: c.Controller.TLSCert != "",
	}
}
