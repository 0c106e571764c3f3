package validate

import (
	"strings"
	"testing"
)

func TestParseJoinTokens(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want int    // tokens
		err  string // substring of the error; "" for none
	}{
		{"empty", "", 0, ""},
		{"comments and blanks", "# hello\n\n   \n# x y\n", 0, ""},
		{"two", "aaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\n  bbbbbbbbbbbbbbbb\tspiffe://meshlet.test/ns/a/sa/c  \n", 2, ""},
		{"crlf", "aaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\r\n", 1, ""},
		{"one field", "aaaaaaaaaaaaaaaa\n", 0, "line 1: want"},
		{"three fields", "# c\naaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b extra\n", 0, "line 2: want"},
		{"short token", "short spiffe://meshlet.test/ns/a/sa/b\n", 0, "line 1: token is 5 characters"},
		{"non-ascii token", "aaaaaaaaaaaaaaa\u00e9 spiffe://meshlet.test/ns/a/sa/b\n", 0, "non-printable or non-ASCII"},
		{"bad id", "aaaaaaaaaaaaaaaa http://meshlet.test/x\n", 0, "line 1: identity"},
		{"other trust domain", "aaaaaaaaaaaaaaaa spiffe://other.test/ns/a/sa/b\n", 0, "not in trust domain"},
		{"duplicate", "aaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\naaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/c\n", 0, "line 2: token already used on line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJoinTokens([]byte(tc.in), testTD)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("%d tokens, want %d", len(got), tc.want)
			}
		})
	}
}

func TestJoinTokensRoundTripAndLookup(t *testing.T) {
	var toks []JoinToken
	for _, sa := range []string{"web", "db", "cache"} {
		tok, err := NewJoinToken()
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, JoinToken{Token: tok, Identity: mustID("spiffe://meshlet.test/ns/dev/sa/" + sa)})
	}
	parsed, err := ParseJoinTokens(FormatJoinTokens(toks), testTD)
	if err != nil {
		t.Fatal(err)
	}
	set := NewTokenSet(parsed)
	for _, tk := range toks {
		id, ok := set.Lookup([]byte(tk.Token))
		if !ok || id != tk.Identity {
			t.Fatalf("lookup(%s) = %s, %v; want %s", tk.Token, id, ok, tk.Identity)
		}
	}
	for _, bad := range []string{"", toks[0].Token[:20], toks[0].Token + "x", strings.ToUpper(toks[1].Token)} {
		if id, ok := set.Lookup([]byte(bad)); ok {
			t.Fatalf("lookup(%q) matched %s", bad, id)
		}
	}
}

// FuzzJoinTokens checks the file parser never panics, that every token it
// accepts is found again by lookup with its identity, and that the formatted
// output parses back to the same set.
func FuzzJoinTokens(f *testing.F) {
	f.Add([]byte("aaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\n# c\n"))
	f.Add([]byte("x y z\n"))
	f.Add([]byte("aaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\naaaaaaaaaaaaaaaa spiffe://meshlet.test/ns/a/sa/b\n"))
	f.Add([]byte("\xff\xfe spiffe://meshlet.test\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := ParseJoinTokens(data, testTD)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "identity: join tokens: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		set := NewTokenSet(toks)
		for _, tk := range toks {
			if !tk.Identity.MemberOf(testTD) {
				t.Fatalf("accepted identity %s outside the trust domain", tk.Identity)
			}
			if id, ok := set.Lookup([]byte(tk.Token)); !ok || id != tk.Identity {
				t.Fatalf("token %q not found back", tk.Token)
			}
		}
		again, err := ParseJoinTokens(FormatJoinTokens(toks), testTD)
		if err != nil || len(again) != len(toks) {
			t.Fatalf("formatted tokens do not parse back: %v (%d vs %d)", err, len(again), len(toks))
		}
	})
}
