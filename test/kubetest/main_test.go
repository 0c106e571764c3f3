package kubetest

import "testing"

func TestMain(m *testing.M) {
	if helperMain() {
		return
	}
	Main(m)
}
