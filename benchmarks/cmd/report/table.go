package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// WriteTable writes sum as a Markdown table with a row per scenario and
// library, after a line saying what the figures are. base names the library
// whose events/s the others are divided by, in a column "vs base"; the
// column is left out if base is not among the libraries.
func WriteTable(w io.Writer, sum *Summary, base string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Median of %s per cell", runsText(sum))
	for _, k := range configKeys(sum.Config) {
		fmt.Fprintf(&b, "; %s: %s", k, sum.Config[k])
	}
	b.WriteString(".\n\n")

	withBase := slices.Contains(sum.Libs, base) && slices.Contains(sum.Units, "events/s")
	head := []string{"scenario", "library"}
	align := []string{"---", "---"}
	for _, u := range sum.Units {
		head = append(head, u)
		align = append(align, "--:")
		if u == "events/s" && withBase {
			head = append(head, "vs "+base)
			align = append(align, "--:")
		}
	}
	writeRow(&b, head)
	writeRow(&b, align)
	for _, sc := range sum.Scenarios {
		for _, lib := range sum.Libs {
			c, ok := sum.Cells[Key{sc, lib}]
			if !ok {
				continue
			}
			row := []string{sc, lib}
			for _, u := range sum.Units {
				row = append(row, formatValue(u, c.Medians))
				if u == "events/s" && withBase {
					row = append(row, ratio(c, sum.Cells[Key{sc, base}]))
				}
			}
			writeRow(&b, row)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" ")
		b.WriteString(strings.ReplaceAll(c, "|", `\|`))
		b.WriteString(" |")
	}
	b.WriteString("\n")
}

// runsText says how many runs each cell summarises: "6 runs", or "4-6 runs"
// if the cells differ.
func runsText(sum *Summary) string {
	lo, hi := math.MaxInt, 0
	for _, c := range sum.Cells {
		lo, hi = min(lo, c.Runs), max(hi, c.Runs)
	}
	switch {
	case lo == hi && lo == 1:
		return "1 run"
	case lo == hi:
		return fmt.Sprintf("%d runs", lo)
	}
	return fmt.Sprintf("%d-%d runs", lo, hi)
}

// configKeys returns the configuration keys worth repeating under a table,
// sorted; pkg is left out, as every result comes from the same package.
func configKeys(config map[string]string) []string {
	var keys []string
	for k := range config {
		if k != "pkg" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func ratio(c, base Cell) string {
	v, ok1 := c.Medians["events/s"]
	bv, ok2 := base.Medians["events/s"]
	if !ok1 || !ok2 || bv == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", v/bv)
}

// formatValue formats the median of unit u, or a dash if the cell has none.
func formatValue(u string, medians map[string]float64) string {
	v, ok := medians[u]
	if !ok {
		return "–"
	}
	switch u {
	case "ns/op":
		switch {
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		case v >= 10:
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.2f", v)
	case "events/s":
		return si(v)
	case "B/op", "allocs/op":
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// si formats v with three significant digits and an SI suffix: 1.23M, 45.6k, 789.
func si(v float64) string {
	for _, p := range []struct {
		scale  float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= p.scale*0.9995 {
			return trimmed(v/p.scale) + p.suffix
		}
	}
	return trimmed(v)
}

// trimmed formats v with three significant digits, without an exponent.
func trimmed(v float64) string {
	switch a := math.Abs(v); {
	case a >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case a >= 9.995:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
