package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profile takes a CPU profile of each proxy on t's path for the length of a
// load phase, into c.profile, when c.profile is set. The returned channel
// yields once every profile is written (or failed).
func profile(ctx context.Context, c config, proto string, t target) <-chan error {
	done := make(chan error, 1)
	if c.profile == "" || len(t.proxies) == 0 {
		done <- nil
		return done
	}
	secs := max(1, int((c.duration - 500*time.Millisecond).Seconds()))
	var wg sync.WaitGroup
	errs := make([]error, len(t.proxies))
	for i, p := range t.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s-%s-%s.pprof", proto, t.key, p.Kind)
			errs[i] = fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.Admin, secs),
				filepath.Join(c.profile, name))
		}()
	}
	go func() {
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	return done
}

func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
