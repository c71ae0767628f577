package main

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// chartUnit is the unit the chart plots.
const chartUnit = "events/s"

// palette holds the bar colours, one per library in order: the Okabe-Ito
// colours, which stay distinct for colour-blind readers.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

// Chart geometry, in SVG user units (pixels).
const (
	barWidth   = 26.0
	barGap     = 4.0
	groupPad   = 22.0
	marginL    = 78.0
	marginR    = 24.0
	marginT    = 92.0 // title, subtitle, legend
	marginB    = 44.0 // scenario names
	plotHeight = 360.0
	// headroom is the share of the plot height the tallest bar may reach,
	// leaving room for its value label.
	headroom = 0.85
)

// WriteChart writes sum's events/s as an SVG bar chart: a group of bars per
// scenario, one bar per library, on a logarithmic axis with a labelled tick
// at every power of ten. A library that did not run a scenario gets "n/a"
// in place of its bar.
func WriteChart(w io.Writer, sum *Summary) error {
	lo, hi, ok := decades(sum)
	if !ok {
		return errors.New("no positive " + chartUnit + " values to plot")
	}
	nLibs, nGroups := float64(len(sum.Libs)), float64(len(sum.Scenarios))
	groupWidth := nLibs*(barWidth+barGap) - barGap + 2*groupPad
	plotWidth := nGroups * groupWidth
	width := marginL + plotWidth + marginR
	height := marginT + plotHeight + marginB
	bottom := marginT + plotHeight
	y := func(v float64) float64 {
		return bottom - plotHeight*(math.Log10(v)-float64(lo))/float64(hi-lo)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.1f" y="22" font-size="16" font-weight="bold">Events per second by library and scenario</text>`+"\n", marginL)
	sub := "median of " + runsText(sum) + ", log scale, higher is better"
	if cpu := sum.Config["cpu"]; cpu != "" {
		sub += "; " + cpu
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="40" fill="#444444">%s</text>`+"\n", marginL, esc(sub))

	// Legend.
	x := marginL
	for i, lib := range sum.Libs {
		fmt.Fprintf(&b, `<rect class="swatch" x="%.1f" y="54" width="12" height="12" fill="%s"/><text class="legend" x="%.1f" y="64">%s</text>`+"\n",
			x, color(i), x+16, esc(lib))
		x += 16 + 7.5*float64(len(lib)) + 18
	}

	// Grid and axis: a labelled line at each power of ten, faint lines at
	// 2x and 5x.
	for e := lo; e <= hi; e++ {
		yy := y(math.Pow(10, float64(e)))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#bbbbbb"/>`+"\n", marginL, marginL+plotWidth, yy, yy)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginL-8, yy, tickLabel(e))
		if e == hi {
			break
		}
		for _, m := range []float64{2, 5} {
			ym := y(m * math.Pow(10, float64(e)))
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eeeeee"/>`+"\n", marginL, marginL+plotWidth, ym, ym)
		}
	}
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", marginL, marginL, marginT, bottom)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s (log scale)</text>`+"\n", marginT+plotHeight/2, chartUnit)

	// Bars.
	for g, sc := range sum.Scenarios {
		gx := marginL + float64(g)*groupWidth
		fmt.Fprintf(&b, `<text class="scenario" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx+groupWidth/2, bottom+22, esc(sc))
		for i, lib := range sum.Libs {
			bx := gx + groupPad + float64(i)*(barWidth+barGap)
			cx := bx + barWidth/2
			v, ok := sum.Cells[Key{sc, lib}].Medians[chartUnit]
			if !ok || v <= 0 {
				fmt.Fprintf(&b, `<text class="na" transform="translate(%.1f %.1f) rotate(-90)" dominant-baseline="middle" fill="#888888" font-size="10">n/a</text>`+"\n", cx, bottom-4)
				continue
			}
			top := y(v)
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s %s</title></rect>`+"\n",
				bx, top, barWidth, bottom-top, color(i), esc(lib), esc(sc), si(v), chartUnit)
			fmt.Fprintf(&b, `<text class="value" transform="translate(%.1f %.1f) rotate(-90)" dominant-baseline="middle" font-size="10">%s</text>`+"\n", cx, top-4, si(v))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// decades returns the powers of ten the axis spans: from the one at or
// below the smallest value to one far enough above the largest that its bar
// leaves room for a label.
func decades(sum *Summary) (lo, hi int, ok bool) {
	vmin, vmax := math.Inf(1), math.Inf(-1)
	for _, c := range sum.Cells {
		if v, found := c.Medians[chartUnit]; found && v > 0 {
			vmin, vmax = min(vmin, v), max(vmax, v)
		}
	}
	if math.IsInf(vmin, 1) {
		return 0, 0, false
	}
	lo = int(math.Floor(math.Log10(vmin)))
	hi = int(math.Ceil(math.Log10(vmax)))
	for hi == lo || (math.Log10(vmax)-float64(lo))/float64(hi-lo) > headroom {
		hi++
	}
	return lo, hi, true
}

// tickLabel labels 10^e: 1, 10, 100, 1k, 10k, ... 100G.
func tickLabel(e int) string {
	if e < 0 {
		return fmt.Sprintf("1e%d", e)
	}
	suffixes := []string{"", "k", "M", "G", "T"}
	if e/3 >= len(suffixes) {
		return fmt.Sprintf("1e%d", e)
	}
	return fmt.Sprintf("%.0f%s", math.Pow(10, float64(e%3)), suffixes[e/3])
}

func color(i int) string { return palette[i%len(palette)] }

func esc(s string) string { return html.EscapeString(s) }
