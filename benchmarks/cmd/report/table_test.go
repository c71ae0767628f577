package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteTable(t *testing.T) {
	var s Set
	require.NoError(t, s.Parse(strings.NewReader(sample)))
	var b strings.Builder
	require.NoError(t, WriteTable(&b, s.Summarize(), "plain"))

	want := `Median of 1-3 runs per cell; cpu: AMD EPYC; goarch: amd64; goos: linux.

| scenario | library | ns/op | events/s | vs plain | B/op | allocs/op | reordered/event |
| --- | --- | --: | --: | --: | --: | --: | --: |
| Sync subs=1 | plain | 99.0 | 10.1M | 1.00x | 0 | 0 | – |
| Sync subs=1 | eventbus | 251 | 3.99M | 0.39x | 96 | 1 | – |
| Async subs=4 | watermill | 41464 | 24.1k | – | 3268.5 | 44 | 0.933 |
`
	assert.Equal(t, want, b.String())
}

func TestWriteTableWithoutTheBase(t *testing.T) {
	var s Set
	require.NoError(t, s.Parse(strings.NewReader(sample)))
	var b strings.Builder
	require.NoError(t, WriteTable(&b, s.Summarize(), "nosuchlib"))
	assert.NotContains(t, b.String(), "vs ")
}

func TestSI(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0.00"},
		{7.5, "7.50"},
		{999, "999"},
		{999.6, "1.00k"},
		{23296, "23.3k"},
		{773889, "774k"},
		{10185982, "10.2M"},
		{2.5e9, "2.50G"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, si(tt.v), "si(%v)", tt.v)
	}
}
