package destination

import (
	"strings"
	"testing"
)

func TestParsePortSet(t *testing.T) {
	tests := []struct {
		in      string
		in1     []uint16
		out     []uint16
		wantErr string
	}{
		{in: "3306", in1: []uint16{3306}, out: []uint16{3305, 3307}},
		{in: " 80 , 443,8000-8002 ", in1: []uint16{80, 443, 8000, 8001, 8002}, out: []uint16{81, 7999, 8003}},
		{in: "", out: []uint16{1, 80}},
		{in: "1-65535", in1: []uint16{1, 65535}},
		{in: "80,abc,90", in1: []uint16{80, 90}, wantErr: `"abc" is not a port`},
		{in: "0", out: []uint16{0}, wantErr: "not a port"},
		{in: "70000", wantErr: "not a port"},
		{in: "90-80", out: []uint16{85}, wantErr: "ends before it starts"},
		{in: "80-", wantErr: "not a port"},
		{in: "-80", wantErr: "not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			set, err := parsePortSet(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("parsePortSet(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			for _, p := range tt.in1 {
				if !set.contains(p) {
					t.Errorf("%q should contain %d", tt.in, p)
				}
			}
			for _, p := range tt.out {
				if set.contains(p) {
					t.Errorf("%q should not contain %d", tt.in, p)
				}
			}
		})
	}
}

func FuzzParsePortSet(f *testing.F) {
	for _, s := range []string{"80", "1-2,3", " 8000 - 8100 ", "a,b", "65535-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, _ := parsePortSet(s)
		for _, r := range set {
			if r.lo == 0 || r.hi < r.lo {
				t.Fatalf("%q gave bad range %+v", s, r)
			}
			if !set.contains(r.lo) || !set.contains(r.hi) {
				t.Fatalf("%q: range %+v not contained", s, r)
			}
		}
	})
}
