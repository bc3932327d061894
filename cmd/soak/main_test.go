package main

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"http://localhost:1", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.0.2.7", false},
	}
	for _, tc := range tests {
		if err := checkLoopback(tc.url); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func TestUnexpected(t *testing.T) {
	tests := []struct {
		name string
		r    result
		want bool
	}{
		{"valid 200", result{kind: kindPrefill, status: 200}, false},
		{"valid 429", result{kind: kindCompletions, status: 429}, false},
		{"valid 400", result{kind: kindPrefill, status: 400}, true},
		{"valid 500", result{kind: kindPrefill, status: 500}, true},
		{"valid 504", result{kind: kindCompletions, status: 504}, true},
		{"transport error", result{kind: kindPrefill, err: errors.New("connection reset")}, true},
		{"invalid 400", result{kind: kindInvalid, status: 400}, false},
		{"invalid 413", result{kind: kindInvalid, status: 413}, false},
		{"invalid 200", result{kind: kindInvalid, status: 200}, true},
		{"invalid 503", result{kind: kindInvalid, status: 503}, true},
		{"cancelled", result{kind: kindCancelled, cancelled: true}, false},
		{"cancel kind answered 200", result{kind: kindCancelled, status: 200}, false},
		{"cancel kind answered 500", result{kind: kindCancelled, status: 500}, true},
	}
	for _, tc := range tests {
		if got := tc.r.unexpected(); got != tc.want {
			t.Errorf("%s: unexpected() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := []float64{quantile(d, 0.5), quantile(d, 0.99), quantile(nil, 0.5)}
	if diff := cmp.Diff([]float64{0.050, 0.099, 0}, got); diff != "" {
		t.Errorf("quantiles (-want +got):\n%s", diff)
	}
}
