package webhook

import (
	"testing"

	"github.com/meshlet/meshlet/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }
