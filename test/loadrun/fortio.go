package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// loader sends the load of one phase.
type loader interface {
	fixed(ctx context.Context, url string, rate int, d time.Duration, workers int) (*result, error)
	max(ctx context.Context, url string, d time.Duration, conc int) (*result, error)
}

// builtin is the load run's own Go client (load.go).
type builtin struct{ c *http.Client }

func (b builtin) fixed(ctx context.Context, url string, rate int, d time.Duration, workers int) (*result, error) {
	return fixedRate(ctx, b.c, url, rate, d, workers), nil
}

func (b builtin) max(ctx context.Context, url string, d time.Duration, conc int) (*result, error) {
	return maxRate(ctx, b.c, url, d, conc), nil
}

// fortio runs `fortio load` for each phase: its own fast HTTP/1.1 client,
// or for h2c net/http's client with -h2. Its latency is each request's own
// (fortio catches up on late requests rather than counting from when they
// were due), so its fixed-rate percentiles can read lower than the builtin
// loader's under queueing.
type fortio struct {
	bin, dir string
	h2       bool
}

func (f fortio) fixed(ctx context.Context, url string, rate int, d time.Duration, workers int) (*result, error) {
	return f.run(ctx, url, strconv.Itoa(rate), d, workers)
}

func (f fortio) max(ctx context.Context, url string, d time.Duration, conc int) (*result, error) {
	return f.run(ctx, url, "0", d, conc) // -qps 0: as fast as the connections allow
}

func (f fortio) run(ctx context.Context, url, qps string, d time.Duration, conc int) (*result, error) {
	out := filepath.Join(f.dir, "fortio.json")
	args := []string{"load", "-quiet", "-qps", qps, "-c", strconv.Itoa(conc), "-t", d.String(),
		"-r", "0.00001", "-p", "50,99", "-uniform", "-json", out}
	if f.h2 {
		args = append(args, "-h2", "-stdclient")
	}
	cmd := exec.CommandContext(ctx, f.bin, append(args, url)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s %v: %w\n%s", f.bin, args, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var rep struct {
		ActualDuration    int64
		RetCodes          map[string]int64
		DurationHistogram struct {
			Count int64
			Data  []struct {
				Start, End float64
				Count      int64
			}
			Percentiles []struct{ Percentile, Value float64 }
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("fortio's report: %w", err)
	}
	r := &result{sent: rep.DurationHistogram.Count, elapsed: time.Duration(rep.ActualDuration)}
	r.failed = r.sent - rep.RetCodes["200"]
	r.spans = spans{}
	for _, b := range rep.DurationHistogram.Data {
		r.spans.add(b.Start*1e3, b.End*1e3, b.Count) // s → ms
	}
	for _, p := range rep.DurationHistogram.Percentiles {
		v := time.Duration(p.Value * float64(time.Second))
		switch p.Percentile {
		case 50:
			r.p50 = v
		case 99:
			r.p99 = v
		}
	}
	return r, nil
}
