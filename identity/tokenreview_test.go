package identity

import "testing"

func TestServiceAccountOf(t *testing.T) {
	cases := []struct {
		user, ns, sa string
		ok           bool
	}{
		{"system:serviceaccount:shop:web", "shop", "web", true},
		{"system:serviceaccount:shop:", "", "", false},
		{"system:serviceaccount::web", "", "", false},
		{"system:serviceaccount:shop:web:x", "", "", false},
		{"system:admin", "", "", false},
		{"system:node:n1", "", "", false},
	}
	for _, tc := range cases {
		ns, sa, ok := serviceAccountOf(tc.user)
		if ns != tc.ns || sa != tc.sa || ok != tc.ok {
			t.Errorf("serviceAccountOf(%q) = %q %q %v", tc.user, ns, sa, ok)
		}
	}
}
