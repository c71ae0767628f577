package main

import (
	"encoding/xml"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// svgElement is an element of the chart, with its attributes and the text
// directly inside it.
type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parseSVG checks that svg is well-formed XML and returns its elements in
// document order.
func parseSVG(t *testing.T, svg string) []svgElement {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var els []svgElement
	var open []int // indexes into els of the elements not yet closed
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "the chart must be well-formed XML")
		switch tok := tok.(type) {
		case xml.StartElement:
			e := svgElement{name: tok.Name.Local, attrs: make(map[string]string)}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			els = append(els, e)
			open = append(open, len(els)-1)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				els[open[len(open)-1]].text += string(tok)
			}
		}
	}
	require.NotEmpty(t, els)
	require.Equal(t, "svg", els[0].name)
	return els
}

func withClass(els []svgElement, class string) []svgElement {
	var out []svgElement
	for _, e := range els {
		if e.attrs["class"] == class {
			out = append(out, e)
		}
	}
	return out
}

func texts(els []svgElement) []string {
	var out []string
	for _, e := range els {
		out = append(out, e.text)
	}
	return out
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return v
}

// summary builds a Summary whose cells hold only the given events/s values.
func summary(scenarios []string, libs []string, values map[Key]float64) *Summary {
	sum := &Summary{Scenarios: scenarios, Libs: libs, Units: []string{"events/s"}, Cells: make(map[Key]Cell)}
	for k, v := range values {
		sum.Cells[k] = Cell{Runs: 6, Medians: map[string]float64{"events/s": v}}
	}
	return sum
}

func TestWriteChart(t *testing.T) {
	tests := []struct {
		name       string
		sum        *Summary
		wantBars   []string // the value labels, in drawing order
		wantNA     int
		wantTicks  []string
		wantGroups []string
	}{
		{
			name: "every library in every scenario gets a labelled bar",
			sum: summary([]string{"Sync subs=1", "Async subs=4"}, []string{"plain", "eventbus"}, map[Key]float64{
				{"Sync subs=1", "plain"}: 10e6, {"Sync subs=1", "eventbus"}: 1e6,
				{"Async subs=4", "plain"}: 2e6, {"Async subs=4", "eventbus"}: 54321,
			}),
			wantBars:   []string{"10.0M", "1.00M", "2.00M", "54.3k"},
			wantTicks:  []string{"10k", "100k", "1M", "10M", "100M"},
			wantGroups: []string{"Sync subs=1", "Async subs=4"},
		},
		{
			name: "a library missing from a scenario is marked n/a",
			sum: summary([]string{"Sync subs=1", "Async subs=1"}, []string{"plain", "cskr"}, map[Key]float64{
				{"Sync subs=1", "plain"}: 500, {"Async subs=1", "plain"}: 400, {"Async subs=1", "cskr"}: 300,
			}),
			wantBars:   []string{"500", "400", "300"},
			wantNA:     1,
			wantTicks:  []string{"100", "1k"},
			wantGroups: []string{"Sync subs=1", "Async subs=1"},
		},
		{
			name:       "names are escaped",
			sum:        summary([]string{"a<b"}, []string{"x&y"}, map[Key]float64{{"a<b", "x&y"}: 42}),
			wantBars:   []string{"42.0"},
			wantTicks:  []string{"10", "100"},
			wantGroups: []string{"a<b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			require.NoError(t, WriteChart(&b, tt.sum))
			els := parseSVG(t, b.String())

			assert.Equal(t, tt.wantBars, texts(withClass(els, "value")))
			assert.Len(t, withClass(els, "bar"), len(tt.wantBars))
			assert.Len(t, withClass(els, "na"), tt.wantNA)
			assert.Equal(t, tt.wantTicks, texts(withClass(els, "tick")))
			assert.Equal(t, tt.wantGroups, texts(withClass(els, "scenario")))
			assert.Equal(t, tt.sum.Libs, texts(withClass(els, "legend")))
			swatches := withClass(els, "swatch")
			require.Len(t, swatches, len(tt.sum.Libs))
			for _, bar := range withClass(els, "bar") {
				assert.True(t, slices.ContainsFunc(swatches, func(s svgElement) bool { return s.attrs["fill"] == bar.attrs["fill"] }),
					"bar colour %s is in the legend", bar.attrs["fill"])
			}
		})
	}
}

func TestWriteChartIsLogarithmic(t *testing.T) {
	sum := summary([]string{"s"}, []string{"a", "b", "c"}, map[Key]float64{
		{"s", "a"}: 1e3, {"s", "b"}: 1e4, {"s", "c"}: 1e6,
	})
	var b strings.Builder
	require.NoError(t, WriteChart(&b, sum))
	bars := withClass(parseSVG(t, b.String()), "bar")
	require.Len(t, bars, 3)
	h := func(i int) float64 { return num(t, bars[i].attrs["height"]) }
	decade := h(1) - h(0)
	assert.Greater(t, decade, 0.0)
	assert.InDelta(t, 2*decade, h(2)-h(1), 0.2, "two decades up is twice one decade taller")
	assert.LessOrEqual(t, h(2), plotHeight*headroom+0.1, "the tallest bar leaves room for its label")
}

func TestWriteChartWithoutValues(t *testing.T) {
	sum := summary([]string{"s"}, []string{"a"}, nil)
	assert.Error(t, WriteChart(io.Discard, sum))
}

func TestTickLabel(t *testing.T) {
	tests := []struct {
		e    int
		want string
	}{{0, "1"}, {1, "10"}, {2, "100"}, {3, "1k"}, {5, "100k"}, {6, "1M"}, {7, "10M"}, {9, "1G"}, {-1, "1e-1"}, {15, "1e15"}}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tickLabel(tt.e), "tickLabel(%d)", tt.e)
	}
}
