//go:build linux

package e2e

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// Re-run as a pod's application (see app_test.go).
	if os.Getenv(roleEnv) == "app" {
		os.Exit(runApp())
	}
	os.Exit(m.Run())
}
