// Command report turns the output of the comparison benchmarks into a
// Markdown table and an SVG bar chart.
//
// Usage:
//
//	report [-table table.md] [-chart chart.svg] [-base plain] [raw.txt ...]
//
// It reads `go test -bench` output from the named files, or from standard
// input if there are none. Each benchmark name is split into its
// key=value parts: the part keyed lib names the library, the others name the
// scenario (BenchmarkAsync/lib=cskr/subs=4 is library cskr in scenario
// "Async subs=4"). Benchmarks without a lib part are skipped. Every figure
// is the median of the runs of one library in one scenario.
//
// It uses only the standard library, so it runs wherever Go does.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	tablePath := flag.String("table", "", "write the Markdown table to `file` (default: standard output)")
	chartPath := flag.String("chart", "", "write the SVG chart to `file` (default: none)")
	base := flag.String("base", "plain", "the `library` the others are compared with in the table")
	flag.Parse()
	if err := run(*tablePath, *chartPath, *base, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(tablePath, chartPath, base string, inputs []string) error {
	var set Set
	if len(inputs) == 0 {
		if err := set.Parse(os.Stdin); err != nil {
			return fmt.Errorf("standard input: %w", err)
		}
	}
	for _, name := range inputs {
		if err := parseFile(&set, name); err != nil {
			return err
		}
	}
	if len(set.Runs) == 0 {
		return errors.New("no benchmark results with a lib= part in the input")
	}
	sum := set.Summarize()
	if err := writeTo(tablePath, os.Stdout, func(w io.Writer) error { return WriteTable(w, sum, base) }); err != nil {
		return err
	}
	if chartPath != "" {
		return writeTo(chartPath, nil, func(w io.Writer) error { return WriteChart(w, sum) })
	}
	return nil
}

func parseFile(set *Set, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := set.Parse(f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// writeTo runs write on the file at path, or on def if path is empty.
func writeTo(path string, def io.Writer, write func(io.Writer) error) error {
	if path == "" {
		return write(def)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
