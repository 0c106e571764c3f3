package meshctl

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// TestDeploymentArgsParse builds the three control-plane binaries and runs
// each with the exact args its installed Deployment gives it (plus a flag
// that makes it exit at once): a renamed or removed flag in a component
// fails here, not in a cluster. Skipped with -short (it links binaries).
func TestDeploymentArgsParse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	build := exec.Command(goBin, "build", "-o", dir+"/",
		"../../identity/cmd/meshlet-identity", "../../injector/cmd/meshlet-injector", "../../destination/cmd/meshlet-destination")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := meshctl(t, "", "install --tag v1 "+pkiFlags)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	exit := map[string]string{"meshlet-identity": "-version", "meshlet-injector": "-version", "meshlet-destination": "--help"}
	n := 0
	for _, o := range decodeAll(t, r.stdout) {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		n++
		c := d.Spec.Template.Spec.Containers[0]
		cmd := exec.Command(filepath.Join(dir, d.Name), append(c.Args, exit[d.Name])...)
		done := make(chan struct{})
		var out []byte
		go func() {
			out, err = cmd.CombinedOutput()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s did not exit", d.Name)
		}
		if err != nil {
			t.Errorf("%s refuses its Deployment's args %v: %v\n%s", d.Name, c.Args, err, out)
		}
	}
	if n != 3 {
		t.Errorf("%d Deployments", n)
	}
}
