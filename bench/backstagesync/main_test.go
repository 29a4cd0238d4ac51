package main

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/catgen"
	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
)

// The catalog the harness generates has exactly -entities entities, all valid.
func TestCatgenOptionsCount(t *testing.T) {
	for _, n := range []int{10, 200, 1234} {
		o, err := catgenOptions(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.Components*2 + o.Groups + o.Users; got != n || o.Users < 1 {
			t.Fatalf("%d: options %+v add up to %d", n, o, got)
		}
		p := cs.ParseFile("files", "catalog.yaml", catgen.Generate(o))
		if len(p.Entities) != n || p.Problems.Errors() != 0 {
			t.Fatalf("%d: %d entities, %d errors", n, len(p.Entities), p.Problems.Errors())
		}
	}
	if _, err := catgenOptions(9); err == nil {
		t.Fatal("9 entities accepted")
	}
}

func TestMedian(t *testing.T) {
	costs := []cost{{wall: 3 * time.Millisecond, requests: 1}, {wall: time.Millisecond, requests: 5}, {wall: 2 * time.Millisecond, requests: 3}}
	if m := median(costs); m.wall != 2*time.Millisecond || m.requests != 3 {
		t.Fatalf("median %+v", m)
	}
	if minOf(costs).wall != time.Millisecond || maxOf(costs).wall != 3*time.Millisecond {
		t.Fatal("min/max")
	}
}
