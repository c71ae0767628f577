package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// The prediction models of the ensemble and the versions the session
// starts with.
var initialModels = map[string]version{
	"XGBoost": {1, 2, 3}, "LightGBM": {2, 0, 1}, "NHiTS": {0, 9, 0}, "PatchTST": {1, 0, 0},
}

// version is a model's semantic version.
type version struct{ major, minor, patch int }

func (v version) String() string { return fmt.Sprintf("v%d.%d.%d", v.major, v.minor, v.patch) }

// ContinuousLearning is the Continuous Learning Manager: it retrains the
// models of the ensemble one after the other and promotes each new version
// once it has beaten the old one in shadow, as a model.promoted event.
type ContinuousLearning struct {
	models *eventbus.Topic[eventbus.ModelPromoted]
	every  time.Duration
	rng    *rand.Rand // used by the producer goroutine only

	mu       sync.Mutex
	versions map[string]version
	promoted int
}

func newContinuousLearning(bus *eventbus.Bus, seed uint64, every time.Duration) *ContinuousLearning {
	return &ContinuousLearning{
		models: eventbus.ModelPromotedTopic(bus), every: every,
		rng: newRand(seed, streamLearning), versions: maps.Clone(initialModels),
	}
}

// run retrains a model every l.every until ctx ends.
func (l *ContinuousLearning) run(ctx context.Context) error {
	names := slices.Sorted(maps.Keys(initialModels))
	return every(ctx, l.every, func(ctx context.Context) error {
		l.mu.Lock()
		name := names[l.promoted%len(names)]
		old := l.versions[name]
		next := version{old.major, old.minor + 1, 0}
		accuracy := 0.55 + 0.1*l.rng.Float64()
		p := eventbus.NewModelPromoted(name, old.String(), next.String(), map[string]float64{
			"accuracy": round(accuracy, 3), "sharpe_ratio": round(1+l.rng.Float64(), 2),
		})
		p.ShadowPerformance = map[string]float64{"hit_rate": round(accuracy-0.02*l.rng.Float64(), 3)}
		l.versions[name] = next
		l.promoted++
		l.mu.Unlock()
		return l.models.Publish(ctx, p)
	})
}

// LearningState is the final state of the Continuous Learning Manager.
type LearningState struct {
	Promotions int               `json:"promotions"`
	Versions   map[string]string `json:"versions"`
}

func (l *ContinuousLearning) state() LearningState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LearningState{Promotions: l.promoted, Versions: map[string]string{}}
	for name, v := range l.versions {
		s.Versions[name] = v.String()
	}
	return s
}

func (s LearningState) String() string {
	return fmt.Sprintf("%d models retrained and promoted", s.Promotions)
}

// EnsembleManager keeps the ensemble of models in service: each
// model.promoted event swaps a model's version and makes a new version of
// the ensemble, whose name the Executor records in every buy.
type EnsembleManager struct {
	models *eventbus.Topic[eventbus.ModelPromoted]

	mu       sync.Mutex
	versions map[string]string
	ensemble int
}

func newEnsembleManager(bus *eventbus.Bus) *EnsembleManager {
	e := &EnsembleManager{models: eventbus.ModelPromotedTopic(bus), versions: map[string]string{}, ensemble: 1}
	for name, v := range initialModels {
		e.versions[name] = v.String()
	}
	return e
}

func (e *EnsembleManager) subscribe(w *wiring) error {
	return on(w, e.models, "EnsembleManager", e.onModel)
}

func (e *EnsembleManager) onModel(_ context.Context, ev eventbus.Event[eventbus.ModelPromoted]) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.versions[ev.Payload.ModelName] = ev.Payload.NewVersion
	e.ensemble++
	return nil
}

// model returns the name of the ensemble in service.
func (e *EnsembleManager) model() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.modelLocked()
}

func (e *EnsembleManager) modelLocked() string { return fmt.Sprintf("ensemble_v%d", e.ensemble) }

// EnsembleState is the final state of the Ensemble Manager.
type EnsembleState struct {
	Ensemble string            `json:"ensemble"`
	Models   map[string]string `json:"models"`
}

func (e *EnsembleManager) state() EnsembleState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return EnsembleState{Ensemble: e.modelLocked(), Models: maps.Clone(e.versions)}
}

func (s EnsembleState) String() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(s.Models)) {
		parts = append(parts, name+" "+s.Models[name])
	}
	return fmt.Sprintf("%s: %s", s.Ensemble, strings.Join(parts, ", "))
}
