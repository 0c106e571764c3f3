package capture

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	cases := []struct {
		in      string
		want    string // Ports.String() of the result
		wantErr string
	}{
		{in: "", want: ""},
		{in: "  ", want: ""},
		{in: "80", want: "80"},
		{in: "443, 80 ,8000-8100", want: "80,443,8000-8100"},
		{in: "80,80", want: "80"},
		{in: "1-65535", want: "1-65535"},
		{in: "5-5", want: "5"},
		{in: "0", wantErr: `"0" is not a port`},
		{in: "65536", wantErr: `"65536" is not a port`},
		{in: "http", wantErr: `"http" is not a port`},
		{in: "80,", wantErr: "empty item"},
		{in: "9-3", wantErr: "ends before it starts"},
		{in: "1-2-3", wantErr: "is not a port"},
		{in: "-5", wantErr: `"" is not a port`},
		{in: strings.Repeat("1,", 64) + "1", wantErr: "at most 64"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePorts(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePorts(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Errorf("ParsePorts(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"", "80", "80,443", "1-65535", "9-3", "a,b", " 5 , 6-7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePorts(s)
		if err != nil {
			return
		}
		// What parses must print back to the same list.
		again, err := ParsePorts(p.String())
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("ParsePorts(%q) = %v; reparsing %q gave %v, %v", s, p, p.String(), again, err)
		}
		for _, r := range p {
			if r.First == 0 || r.First > r.Last {
				t.Fatalf("ParsePorts(%q) gave bad range %v", s, r)
			}
		}
	})
}

func TestArgsRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.InboundPort, c.OutboundPort, c.ProxyUID = 5143, 5140, 3000
	c.SkipInboundPorts = Ports{{First: 22, Last: 22}, {First: 8000, Last: 8100}}
	c.SkipOutboundPorts = Ports{{First: 3306, Last: 3306}}
	c.IPv6 = false
	got := DefaultConfig()
	var remove bool
	if err := FlagSet(&got, &remove).Parse(c.Args()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("Args %v parsed back to %+v, want %+v", c.Args(), got, c)
	}
}

func TestDryRunCommands(t *testing.T) {
	c := DefaultConfig()
	c.SkipOutboundPorts = Ports{{First: 3306, Last: 3306}}
	c.SkipInboundPorts = Ports{{First: 8000, Last: 8100}}
	c.IPv6 = false
	c.DryRun = true
	var out strings.Builder
	c.Log = &out
	c.Run = func(context.Context, []string) ([]byte, error) {
		t.Fatal("a dry run must not run commands")
		return nil, nil
	}
	if err := Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	want := `iptables -w -t nat -N MESHLET_PREROUTING
iptables -w -t nat -F MESHLET_PREROUTING
iptables -w -t nat -A MESHLET_PREROUTING -p tcp -m tcp --dport 4190:4191 -j RETURN
iptables -w -t nat -A MESHLET_PREROUTING -p tcp -m tcp --dport 8000:8100 -j RETURN
iptables -w -t nat -A MESHLET_PREROUTING -p tcp -j REDIRECT --to-ports 4143
iptables -w -t nat -N MESHLET_OUTPUT
iptables -w -t nat -F MESHLET_OUTPUT
iptables -w -t nat -A MESHLET_OUTPUT -m owner --uid-owner 2102 -j RETURN
iptables -w -t nat -A MESHLET_OUTPUT -o lo -j RETURN
iptables -w -t nat -A MESHLET_OUTPUT -d 127.0.0.1/32 -j RETURN
iptables -w -t nat -A MESHLET_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN
iptables -w -t nat -A MESHLET_OUTPUT -p tcp -j REDIRECT --to-ports 4140
iptables -w -t nat -I PREROUTING 1 -j MESHLET_PREROUTING
iptables -w -t nat -I OUTPUT 1 -j MESHLET_OUTPUT
`
	if out.String() != want {
		t.Errorf("dry run printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestIPv6SkippedWhenUnavailable(t *testing.T) {
	c := DefaultConfig()
	var ran []string
	c.Run = func(_ context.Context, argv []string) ([]byte, error) {
		ran = append(ran, strings.Join(argv, " "))
		if argv[0] == "ip6tables" {
			return []byte("can't initialize ip6tables table `nat'"), errors.New("exit status 3")
		}
		return nil, nil
	}
	var log strings.Builder
	c.Log = &log
	if err := Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for _, r := range ran[1:] {
		if strings.HasPrefix(r, "ip6tables") {
			t.Errorf("ran %q after ip6tables was found unusable", r)
		}
	}
	if !strings.Contains(log.String(), "IPv6 traffic is not captured") {
		t.Errorf("no note about IPv6 in log:\n%s", log.String())
	}
}

func TestCommandErrorNamesCommand(t *testing.T) {
	c := DefaultConfig()
	c.IPv6 = false
	c.Run = func(_ context.Context, argv []string) ([]byte, error) {
		if argv[4] == "-A" {
			return []byte("iptables: No chain/target/match by that name."), errors.New("exit status 1")
		}
		return nil, nil
	}
	err := Apply(context.Background(), c)
	if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "-A MESHLET_PREROUTING") || !strings.Contains(err.Error(), "No chain") {
		t.Errorf("Apply error = %v, want ErrCommand naming the command and its output", err)
	}
}

func TestValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.InboundPort = 0 },
		func(c *Config) { c.OutboundPort = 0 },
		func(c *Config) { c.OutboundPort = c.InboundPort },
		func(c *Config) { c.SkipInboundPorts = Ports{{First: 4000, Last: 5000}} },
	}
	for i, mod := range bad {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: Validate accepted %+v", i, c)
		}
		if err := Apply(context.Background(), c); err == nil {
			t.Errorf("case %d: Apply accepted %+v", i, c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestRunInitFlags(t *testing.T) {
	var out, errOut strings.Builder
	err := RunInit(context.Background(), []string{"--dry-run", "--ipv6=false", "--skip-outbound-ports=25"}, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--dport 25 -j RETURN") {
		t.Errorf("dry run output lacks the skip port:\n%s", out.String())
	}
	for _, args := range [][]string{{"--skip-outbound-ports=x"}, {"--inbound-port=0"}, {"extra"}, {"--proxy-uid=-1"}} {
		if err := RunInit(context.Background(), append([]string{"--dry-run"}, args...), &out, &errOut); err == nil {
			t.Errorf("RunInit(%v) accepted bad input", args)
		}
	}
}
