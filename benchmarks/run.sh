#!/usr/bin/env bash
# Runs the comparison benchmarks and writes, under results/:
#   raw.txt        the `go test -bench` output, headed by the date and machine
#   benchstat.txt  benchstat's view: every benchmark, then each library against plain Go
#   table.md       the medians, as README.md shows them
#   chart.svg      events/s per library and scenario, as README.md shows it
# and copies table.md into README.md and the repository's README.md.
#
# Environment (all optional):
#   COUNT      runs of each benchmark (default 6, what benchstat needs for a confidence interval)
#   BENCHTIME  go test -benchtime (default 1s; e.g. 20000x for a quick check)
#   BENCH      go test -bench regexp (default .)
#   OUT        the directory to write (default results)
# A quick check that leaves results/ alone:
#   COUNT=1 BENCHTIME=20000x OUT=/tmp/bench ./run.sh
set -euo pipefail
cd "$(dirname "$0")"

count=${COUNT:-6}
benchtime=${BENCHTIME:-1s}
bench=${BENCH:-.}
out=${OUT:-results}

benchstat() {
	local bin
	bin=$(go env GOPATH)/bin/benchstat
	if type -P benchstat >/dev/null; then
		command benchstat "$@"
	elif [[ -x $bin ]]; then
		"$bin" "$@"
	else
		go run golang.org/x/perf/cmd/benchstat@latest "$@"
	fi
}

# machine prints benchmark configuration lines, which benchstat and the
# report keep with the results: go test prints only goos, goarch and cpu.
machine() {
	echo "date: $(date -u +%Y-%m-%d)"
	echo "go: $(go env GOVERSION)"
	echo "cores: $(nproc)"
	local hv
	hv=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' || true)
	if [[ -n $hv ]]; then
		echo "hypervisor: $hv"
	fi
}

# Both cores take part in the async scenarios: anything else running skews them.
read -r load1 _ </proc/loadavg || load1=0
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
	echo "run.sh: load average $load1: other work is running and will skew the results" >&2
fi

mkdir -p "$out"
start=$SECONDS
{
	machine
	go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count "$count" -timeout 60m .
} | tee "$out/raw.txt"

{
	echo "# benchstat raw.txt"
	echo
	(cd "$out" && benchstat raw.txt)
	echo
	echo "# benchstat -col /lib raw.txt: each library against plain Go"
	echo
	(cd "$out" && benchstat -col /lib raw.txt)
} >"$out/benchstat.txt"

go run ./cmd/report -table "$out/table.md" -chart "$out/chart.svg" "$out/raw.txt"

# README.md here and the repository's README.md show table.md between two
# markers: keep them in step with the results they describe.
inject() { # inject FILE MARKER
	awk -v table="$out/table.md" -v m="$2" '
		index($0, "<!-- begin " m) == 1 { print; while ((getline line < table) > 0) print line; close(table); skip = 1; next }
		index($0, "<!-- end " m) == 1 { skip = 0 }
		!skip
	' "$1" >"$1.new"
	mv "$1.new" "$1"
}
if [[ $out == results ]]; then
	inject README.md results/table.md
	inject ../README.md benchmarks/results/table.md
fi

elapsed=$((SECONDS - start))
echo
cat "$out/table.md"
echo
echo "wrote $out/{raw.txt,benchstat.txt,table.md,chart.svg} in $((elapsed / 60))m$((elapsed % 60))s"
