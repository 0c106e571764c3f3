package h2

import (
	"net/url"
	"reflect"
	"testing"
)

var requestURLCases = []string{
	"/", "/a/b", "/a?b=c", "/a?", "/a??", "/a?b?c", "/?", "//x/y", "/a%20b", "/a b", "/a?b c",
	"/a#f", "/a?b#f", "/ä", "/a?ä", "/a\x7f", "/a?\x01", "/a(b)", "/a*b", "/a!b", "/x:y@z;w=v&u+t,s$r~q",
	"/helloworld.Greeter/SayHello", "/a%2fb", "/a%zz", "*", "", "a/b", "http://h/p",
}

func TestRequestURLMatchesParseRequestURI(t *testing.T) {
	for _, p := range requestURLCases {
		checkRequestURL(t, p)
	}
}

func FuzzRequestURL(f *testing.F) {
	for _, p := range requestURLCases {
		f.Add(p)
	}
	f.Fuzz(checkRequestURL)
}

func checkRequestURL(t *testing.T, p string) {
	got, gotErr := requestURL(p)
	want, wantErr := url.ParseRequestURI(p)
	if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
		t.Errorf("%q: got %#v, %v; url.ParseRequestURI gives %#v, %v", p, got, gotErr, want, wantErr)
	}
}
