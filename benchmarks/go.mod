module github.com/quantumtrader/eventbus/benchmarks

go 1.26.0

replace github.com/quantumtrader/eventbus => ../

require (
	github.com/quantumtrader/eventbus v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
