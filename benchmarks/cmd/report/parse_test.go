package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/quantumtrader/eventbus/benchmarks
cpu: AMD EPYC
BenchmarkSync/lib=plain/subs=1-2         	11855614	        98.17 ns/op	  10185982 events/s	       0 B/op	       0 allocs/op
BenchmarkSync/lib=plain/subs=1-2         	11855614	       102.0 ns/op	   9803921 events/s	       0 B/op	       0 allocs/op
BenchmarkSync/lib=plain/subs=1-2         	11855614	        99.00 ns/op	  10101010 events/s	       0 B/op	       0 allocs/op
BenchmarkSync/lib=eventbus/subs=1-2      	 4458430	       250.8 ns/op	   3986868 events/s	      96 B/op	       1 allocs/op
BenchmarkAsync/lib=watermill/subs=4-2    	   23991	     42927 ns/op	     23296 events/s	         0.9660 reordered/event	    3537 B/op	      48 allocs/op
BenchmarkAsync/lib=watermill/subs=4-2    	   23991	     40000 ns/op	     25000 events/s	         0.9000 reordered/event	    3000 B/op	      40 allocs/op
BenchmarkOther-2                         	 1000000	        10.0 ns/op
PASS
ok  	github.com/quantumtrader/eventbus/benchmarks	19.230s
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    []Run
		wantErr string
	}{
		{
			name:  "a result line becomes a run of its library in its scenario",
			input: "BenchmarkAsync/lib=cskr/subs=4-2   935641   1292 ns/op   773889 events/s   16 B/op   1 allocs/op\n",
			want: []Run{{Scenario: "Async subs=4", Lib: "cskr", Iters: 935641, Values: map[string]float64{
				"ns/op": 1292, "events/s": 773889, "B/op": 16, "allocs/op": 1,
			}}},
		},
		{
			name:  "the lib part may stand anywhere in the name",
			input: "BenchmarkPublish/subs=4/lib=plain/mode=async-8   100   5.5 ns/op\n",
			want:  []Run{{Scenario: "Publish subs=4 mode=async", Lib: "plain", Iters: 100, Values: map[string]float64{"ns/op": 5.5}}},
		},
		{
			name:  "a name without a GOMAXPROCS suffix keeps its last part whole",
			input: "BenchmarkSync/lib=my-lib   100   5 ns/op\n",
			want:  []Run{{Scenario: "Sync", Lib: "my-lib", Iters: 100, Values: map[string]float64{"ns/op": 5}}},
		},
		{
			name:  "benchmarks without a lib part, log lines and summaries are skipped",
			input: "BenchmarkOther-2   1000   10 ns/op\nBenchmarkSync/lib=x says hello\nPASS\nok  \tpkg\t1.0s\n--- FAIL: BenchmarkX\n",
			want:  nil,
		},
		{
			name:    "a value that is not a number is an error naming the line",
			input:   "goos: linux\nBenchmarkSync/lib=x-2   100   fast ns/op\n",
			wantErr: "line 2: BenchmarkSync/lib=x: value \"fast\" of ns/op",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set
			err := s.Parse(strings.NewReader(tt.input))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, s.Runs)
		})
	}
}

func TestParseKeepsTheConfiguration(t *testing.T) {
	var s Set
	require.NoError(t, s.Parse(strings.NewReader(sample)))
	assert.Equal(t, map[string]string{
		"goos": "linux", "goarch": "amd64", "cpu": "AMD EPYC",
		"pkg": "github.com/quantumtrader/eventbus/benchmarks",
	}, s.Config)
}

func TestSummarize(t *testing.T) {
	var s Set
	require.NoError(t, s.Parse(strings.NewReader(sample)))
	sum := s.Summarize()

	assert.Equal(t, []string{"Sync subs=1", "Async subs=4"}, sum.Scenarios, "scenarios in order of appearance")
	assert.Equal(t, []string{"plain", "eventbus", "watermill"}, sum.Libs, "libraries in order of appearance")
	assert.Equal(t, []string{"ns/op", "events/s", "B/op", "allocs/op", "reordered/event"}, sum.Units, "standard units first")

	tests := []struct {
		name string
		key  Key
		runs int
		want map[string]float64
	}{
		{
			name: "an odd number of runs gives the middle value",
			key:  Key{"Sync subs=1", "plain"}, runs: 3,
			want: map[string]float64{"ns/op": 99, "events/s": 10101010, "B/op": 0, "allocs/op": 0},
		},
		{
			name: "an even number of runs gives the mean of the middle two",
			key:  Key{"Async subs=4", "watermill"}, runs: 2,
			want: map[string]float64{"ns/op": 41463.5, "events/s": 24148, "reordered/event": 0.933, "B/op": 3268.5, "allocs/op": 44},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := sum.Cells[tt.key]
			require.True(t, ok)
			assert.Equal(t, tt.runs, c.Runs)
			require.Len(t, c.Medians, len(tt.want))
			for u, v := range tt.want {
				assert.InDelta(t, v, c.Medians[u], 1e-9, u)
			}
		})
	}
	_, ok := sum.Cells[Key{"Async subs=4", "plain"}]
	assert.False(t, ok, "a library that did not run a scenario has no cell")
}
