package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// libKey is the key of the name part that names the library.
const libKey = "lib"

// Set is what Parse gathered from benchmark output.
type Set struct {
	// Config holds the "key: value" lines (goos, cpu, and any a script
	// adds), the last value of each key winning.
	Config map[string]string
	Runs   []Run
}

// Run is one result line.
type Run struct {
	Scenario string // the name without its lib part, e.g. "Async subs=4"
	Lib      string
	Iters    int
	Values   map[string]float64 // by unit: "ns/op", "events/s", "B/op"...
}

// Parse adds the results of the benchmark output in r to s. Lines that are
// neither results nor configuration (PASS, ok, log output) are ignored; a
// result line that does not parse is an error.
func (s *Set) Parse(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "Benchmark") {
			run, ok, err := parseResult(text)
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			if ok {
				s.Runs = append(s.Runs, run)
			}
			continue
		}
		if k, v, ok := parseConfig(text); ok {
			if s.Config == nil {
				s.Config = make(map[string]string)
			}
			s.Config[k] = v
		}
	}
	return sc.Err()
}

// parseConfig recognises a configuration line: a lowercase key without
// spaces, a colon, and a value.
func parseConfig(text string) (key, value string, ok bool) {
	key, value, ok = strings.Cut(text, ":")
	if !ok || key == "" || strings.ContainsAny(key, " \t") || strings.ToLower(key) != key {
		return "", "", false
	}
	return key, strings.TrimSpace(value), true
}

// parseResult parses a result line. ok is false for a well-formed line of a
// benchmark without a lib part, and for "BenchmarkX" lines that are not
// results (a benchmark's log output can start with its name).
func parseResult(text string) (run Run, ok bool, err error) {
	f := strings.Fields(text)
	if len(f) < 4 || len(f)%2 != 0 {
		return run, false, nil
	}
	iters, err := strconv.Atoi(f[1])
	if err != nil {
		return run, false, nil
	}
	name := trimProcs(f[0])
	parts := strings.Split(strings.TrimPrefix(name, "Benchmark"), "/")
	scenario := parts[:1]
	for _, p := range parts[1:] {
		if v, found := strings.CutPrefix(p, libKey+"="); found {
			run.Lib = v
			continue
		}
		scenario = append(scenario, p)
	}
	if run.Lib == "" {
		return run, false, nil
	}
	run.Scenario = strings.Join(scenario, " ")
	run.Iters = iters
	run.Values = make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return run, false, fmt.Errorf("%s: value %q of %s: %w", name, f[i], f[i+1], err)
		}
		run.Values[f[i+1]] = v
	}
	return run, true, nil
}

// trimProcs removes the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Summary is the medians of a Set, by scenario and library, each list in
// the order of first appearance in the input.
type Summary struct {
	Config    map[string]string
	Scenarios []string
	Libs      []string
	Units     []string // every unit seen, standard ones first
	Cells     map[Key]Cell
}

// Key identifies one library in one scenario.
type Key struct{ Scenario, Lib string }

// Cell is the summary of the runs of one library in one scenario.
type Cell struct {
	Runs    int
	Medians map[string]float64 // by unit; a unit some runs lack is the median of the others
}

// Summarize returns the medians of s.
func (s *Set) Summarize() *Summary {
	sum := &Summary{Config: s.Config, Cells: make(map[Key]Cell)}
	values := make(map[Key]map[string][]float64)
	for _, r := range s.Runs {
		k := Key{r.Scenario, r.Lib}
		if !slices.Contains(sum.Scenarios, r.Scenario) {
			sum.Scenarios = append(sum.Scenarios, r.Scenario)
		}
		if !slices.Contains(sum.Libs, r.Lib) {
			sum.Libs = append(sum.Libs, r.Lib)
		}
		if values[k] == nil {
			values[k] = make(map[string][]float64)
		}
		for u, v := range r.Values {
			values[k][u] = append(values[k][u], v)
			if !slices.Contains(sum.Units, u) {
				sum.Units = append(sum.Units, u)
			}
		}
		c := sum.Cells[k]
		c.Runs++
		sum.Cells[k] = c
	}
	for k, byUnit := range values {
		c := sum.Cells[k]
		c.Medians = make(map[string]float64, len(byUnit))
		for u, vs := range byUnit {
			c.Medians[u] = median(vs)
		}
		sum.Cells[k] = c
	}
	sort.SliceStable(sum.Units, func(i, j int) bool { return unitRank(sum.Units[i]) < unitRank(sum.Units[j]) })
	return sum
}

// standardUnits are the columns every table has, in this order; other
// units follow in the order they were seen.
var standardUnits = []string{"ns/op", "events/s", "B/op", "allocs/op"}

func unitRank(u string) int {
	if i := slices.Index(standardUnits, u); i >= 0 {
		return i
	}
	return len(standardUnits)
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
