package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/tabwriter"
	"time"
)

// Options configure Up.
type Options struct {
	// File is the mesh file (docs/dev.md).
	File string
	// StateDir holds the CA, tokens, generated files and logs. "" means
	// <user cache dir>/meshlet/dev.
	StateDir string
	// Out receives what runs where and every change; nil discards it.
	Out io.Writer
	// ReloadInterval is how often File is checked for edits; 0 means 500ms.
	ReloadInterval time.Duration
	// StartTimeout bounds each process's start-up; 0 means 30s.
	StartTimeout time.Duration
	// Grace is how long a stopping proxy may drain; 0 means 5s.
	Grace time.Duration
	// Ready, when not nil, is called once everything runs, with the
	// status as `meshctl dev status` reads it.
	Ready func(Status)
}

func (o *Options) defaults() error {
	if o.StateDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("dev: no --state-dir given and no user cache dir: %w", err)
		}
		o.StateDir = filepath.Join(cache, "meshlet", "dev")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = 500 * time.Millisecond
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	return nil
}

// binaries are the programs a local mesh runs.
type binaries struct{ proxy, identity, destination string }

func findBinaries() (binaries, error) {
	var b binaries
	var err error
	if b.proxy, err = findBinary("meshlet-proxy"); err != nil {
		return b, err
	}
	if b.identity, err = findBinary("meshlet-identity"); err != nil {
		return b, err
	}
	b.destination, err = findBinary("meshlet-destination")
	return b, err
}

// mesh is a running local mesh.
type mesh struct {
	opt   Options
	bins  binaries
	st    *state
	cp    controlPlane
	plan  *plan
	ports *portAlloc
	procs map[string]*proc
	mu    sync.Mutex // guards procs for Status readers
}

// Up runs the mesh described by opt.File until ctx ends, following edits of
// the file, then stops every process it started. A file that is invalid, a
// listen address in use or a missing binary fails before anything starts.
func Up(ctx context.Context, opt Options) error {
	if err := opt.defaults(); err != nil {
		return err
	}
	cfg, err := Load(opt.File)
	if err != nil {
		return err
	}
	if err := checkListenFree(cfg, nil); err != nil {
		return fmt.Errorf("dev: %s: %w", opt.File, err)
	}
	bins, err := findBinaries()
	if err != nil {
		return err
	}
	m := &mesh{opt: opt, bins: bins, st: newState(opt.StateDir), ports: newPortAlloc(), procs: map[string]*proc{}}
	p, err := makePlan(cfg, nil, m.ports)
	if err != nil {
		return err
	}
	defer m.stopAll()
	if err := m.start(ctx, cfg, p); err != nil {
		return err
	}
	if opt.Ready != nil {
		opt.Ready(m.status())
	}
	return m.follow(ctx, cfg)
}

// start brings up the control plane, then every proxy of p.
func (m *mesh) start(ctx context.Context, cfg *Config, p *plan) error {
	if err := m.st.init(cfg.TrustDomain); err != nil {
		return err
	}
	var err error
	if m.cp, err = newControlPlane(m.ports); err != nil {
		return err
	}
	if err := m.apply(ctx, p); err != nil {
		return err
	}
	m.print(p)
	return nil
}

// apply makes the running proxies those of p. New proxies start and get
// ready before the endpoints file names them, and gone ones leave the file
// before they stop (after the change has had time to reach every proxy),
// so no request is sent to a sidecar that is not listening.
func (m *mesh) apply(ctx context.Context, p *plan) error {
	want := m.specs(p)
	m.mu.Lock()
	var gone []*proc
	for name, pr := range m.procs {
		if _, keep := want[name]; !keep && !m.cp.owns(name) {
			gone = append(gone, pr)
			delete(m.procs, name)
			m.st.forget(name)
		}
	}
	m.mu.Unlock()
	if err := m.st.writeJoinTokens(); err != nil {
		return err
	}
	first := m.procs["identity"] == nil
	if first {
		if err := m.startAndWait(ctx, m.cp.identitySpec(m.bins, m.st, p.TrustDomain)); err != nil {
			return err
		}
		if err := m.st.writeEndpoints(p); err != nil {
			return err
		}
		if err := m.startAndWait(ctx, m.cp.destinationSpec(m.bins, m.st)); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		if m.procs[name] == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		pr, err := startProc(want[name].procSpec, m.st.logs)
		if err != nil {
			errs[i] = err
			continue
		}
		m.mu.Lock()
		m.procs[name] = pr
		m.mu.Unlock()
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = pr.waitReady(ctx, m.opt.StartTimeout) }()
	}
	wg.Wait()
	m.plan = p
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !first {
		if err := m.st.writeEndpoints(p); err != nil {
			return err
		}
	}
	if err := m.writeStatus(); err != nil {
		return err
	}
	if len(gone) > 0 {
		// The destination reads the file every reloadInterval and streams
		// the change at once; give it ample time (a loaded machine delays
		// it), then drain.
		select {
		case <-ctx.Done():
		case <-time.After(10 * reloadInterval):
		}
		for _, pr := range gone {
			wg.Add(1)
			go func() { defer wg.Done(); pr.stop(m.opt.Grace) }()
		}
		wg.Wait()
	}
	return nil
}

func (m *mesh) startAndWait(ctx context.Context, spec procSpec) error {
	pr, err := startProc(spec, m.st.logs)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.procs[spec.Name] = pr
	m.mu.Unlock()
	return pr.waitReady(ctx, m.opt.StartTimeout)
}

// follow re-reads the mesh file on change until ctx ends. An invalid edit
// is reported and ignored: the mesh keeps running as it was.
func (m *mesh) follow(ctx context.Context, cfg *Config) error {
	last, _ := os.ReadFile(m.opt.File)
	tick := time.NewTicker(m.opt.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := m.checkAlive(); err != nil {
			return err
		}
		b, err := os.ReadFile(m.opt.File)
		if err != nil || string(b) == string(last) {
			continue
		}
		last = b
		next, err := Parse(b)
		if err == nil {
			err = checkListenFree(next, m.plan)
		}
		if err != nil {
			fmt.Fprintf(m.opt.Out, "%s: %v (the mesh keeps running unchanged)\n", m.opt.File, err)
			continue
		}
		if next.TrustDomain != cfg.TrustDomain {
			fmt.Fprintf(m.opt.Out, "%s: the trust domain cannot change while the mesh runs: restart `meshctl dev up`\n", m.opt.File)
			continue
		}
		p, err := makePlan(next, m.plan, m.ports)
		if err == nil {
			err = m.apply(ctx, p)
		}
		if err != nil {
			fmt.Fprintf(m.opt.Out, "%s: applying the edit: %v\n", m.opt.File, err)
			continue
		}
		fmt.Fprintf(m.opt.Out, "%s changed: now %d sidecars, %d upstreams\n", m.opt.File, len(p.Sidecars), len(p.Upstreams))
		m.print(p)
	}
}

// checkAlive fails when a process of the mesh exited by itself.
func (m *mesh) checkAlive() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pr := range m.procs {
		if done, err := pr.exited(); done {
			return fmt.Errorf("dev: %s exited (%v); its log %s ends:\n%s", name, err, pr.logPath, tail(pr.logPath, 15))
		}
	}
	return nil
}

// stopAll stops the proxies, then the control plane.
func (m *mesh) stopAll() {
	m.mu.Lock()
	var proxies, cp []*proc
	for name, pr := range m.procs {
		if m.cp.owns(name) {
			cp = append(cp, pr)
		} else {
			proxies = append(proxies, pr)
		}
	}
	m.procs = map[string]*proc{}
	m.mu.Unlock()
	for _, group := range [][]*proc{proxies, cp} {
		var wg sync.WaitGroup
		for _, pr := range group {
			wg.Add(1)
			go func() { defer wg.Done(); pr.stop(m.opt.Grace) }()
		}
		wg.Wait()
	}
	os.Remove(m.st.status)
}

// print writes what runs where.
func (m *mesh) print(p *plan) {
	w := tabwriter.NewWriter(m.opt.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "control plane\tidentity %s\tdestination %s\tstate %s\n", m.cp.identity, m.cp.destination, m.st.dir)
	for _, u := range p.Upstreams {
		fmt.Fprintf(w, "upstream %s\tlisten %s\tadmin http://%s\t%s\n", u.Name(), u.Listen, u.Admin, u.Identity)
	}
	for _, s := range p.Sidecars {
		fmt.Fprintf(w, "sidecar %s\tinbound %s → %s\tadmin http://%s\t%s\n", s.Name(), s.Inbound, s.Instance, s.Admin, s.Identity)
	}
	w.Flush()
}

// Status is what `meshctl dev status` reads: every proxy and where its
// metrics are.
type Status struct {
	StateDir string        `json:"stateDir"`
	Proxies  []ProxyStatus `json:"proxies"`
}

// ProxyStatus describes one running proxy.
type ProxyStatus struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "sidecar" or "upstream"
	Service  string `json:"service"`
	Address  string `json:"address"` // the instance (sidecar) or listen address (upstream)
	Admin    string `json:"admin"`
	Identity string `json:"identity"`
	// Inbound is a sidecar's own listener (mTLS from proxies, and
	// plaintext from unmeshed clients); "" for upstream proxies.
	Inbound string `json:"inbound,omitempty"`
	// PID is the proxy's process id.
	PID int `json:"pid"`
}

func (m *mesh) status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	pid := func(name string) int {
		if p := m.procs[name]; p != nil {
			return p.cmd.Process.Pid
		}
		return 0
	}
	s := Status{StateDir: m.st.dir}
	for _, u := range m.plan.Upstreams {
		s.Proxies = append(s.Proxies, ProxyStatus{Name: u.Name(), Kind: "upstream", Service: u.Service,
			Address: u.Listen.String(), Admin: u.Admin, Identity: u.Identity, PID: pid(u.Name())})
	}
	for _, sc := range m.plan.Sidecars {
		s.Proxies = append(s.Proxies, ProxyStatus{Name: sc.Name(), Kind: "sidecar", Service: sc.Service,
			Address: sc.Instance.String(), Admin: sc.Admin, Identity: sc.Identity, Inbound: sc.Inbound, PID: pid(sc.Name())})
	}
	return s
}

func (m *mesh) writeStatus() error {
	b, err := json.MarshalIndent(m.status(), "", "  ")
	if err != nil {
		return fmt.Errorf("dev: status: %w", err)
	}
	return writeAtomic(m.st.status, b, 0o644)
}

// ReadStatus reads the status a running `meshctl dev up` left in stateDir.
func ReadStatus(stateDir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(stateDir, "status.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("dev: no local mesh runs with state dir %s (start one with `meshctl dev up -f mesh.yaml`)", stateDir)
		}
		return s, fmt.Errorf("dev: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("dev: %s: %w", filepath.Join(stateDir, "status.json"), err)
	}
	return s, nil
}
