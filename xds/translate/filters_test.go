package translate

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
)

// Whatever order a listener lists its filters in, they run in
// filterOrder, and a filter without a place there is refused.
func TestFilterOrderIsDecidedInOnePlace(t *testing.T) {
	fs, err := hcmFilters([]httpFilter{router{}, extAuthz{}, headerMutation{}}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != strings.Join(filterOrder, ",") {
		t.Fatalf("filters %v, want %v", got, filterOrder)
	}
	if _, err := hcmFilters([]httpFilter{unplaced{}, router{}}, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "no place in filterOrder") {
		t.Fatalf("an unplaced filter: %v", err)
	}
}

type unplaced struct{ noRouteConfig }

func (unplaced) name() string                               { return "envoy.filters.http.unplaced" }
func (unplaced) listenerConfig(Options) (*anypb.Any, error) { return nil, nil }
