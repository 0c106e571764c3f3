package drain

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTrackerWaitsForWork(t *testing.T) {
	var tr Tracker
	release := make(chan struct{})
	for range 3 {
		if !tr.Go(func() { <-release }) {
			t.Fatal("Go refused work before Close")
		}
	}
	if n := tr.Active(); n != 3 {
		t.Fatalf("Active = %d, want 3", n)
	}
	tr.Close()
	if tr.Go(func() { t.Error("ran after Close") }) {
		t.Fatal("Go accepted work after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with work running = %v, want deadline exceeded", err)
	}
	close(release)
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatalf("Wait after the work ended: %v", err)
	}
	if n := tr.Active(); n != 0 {
		t.Fatalf("Active = %d after Wait, want 0", n)
	}
}

func TestTrackerEmpty(t *testing.T) {
	var tr Tracker
	tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tr.Wait(ctx); err != nil {
		t.Fatalf("Wait on an idle tracker: %v", err)
	}
}
