package main

import (
	"math/rand/v2"
	"time"
)

// The fault kinds, each caused by faults.go.
const (
	kindRollout       = "rolling restart"
	kindDeletePod     = "pod deleted (one replica)"
	kindDeleteLast    = "pods deleted (every replica)"
	kindScaleZero     = "scaled to 0 and back"
	kindSelector      = "selector changed"
	kindPorts         = "port and targetPort changed"
	kindSlices        = "EndpointSlices churned"
	kindNamespace     = "namespace deleted and recreated"
	kindServiceAdd    = "Service added"
	kindServiceRemove = "Service removed"
	kindAPIServer     = "apiserver stopped"
	kindKwok          = "kwok restarted"
	kindRefresh       = "kubefwd refresh"
	kindStop          = "kubefwd SIGSTOP, SIGCONT"
	kindKill          = "kubefwd kill -9, restarted"
	kindHostsEdit     = "hosts file edited by another program"
	kindHostsReset    = "hosts file replaced by another program"
)

var allKinds = []string{
	kindRollout, kindDeletePod, kindDeleteLast, kindScaleZero, kindSelector, kindPorts, kindSlices,
	kindNamespace, kindServiceAdd, kindServiceRemove, kindAPIServer, kindKwok, kindRefresh, kindStop,
	kindKill, kindHostsEdit, kindHostsReset,
}

// schedule deals fault kinds in rounds, each round every kind once in an
// order drawn from the seed, so every kind comes up about equally often
// and a run can be replayed. In a full run kill -9 waits for the second
// half, so that one kubefwd process lives through the first half and
// resource growth can be judged on it; the kills it owes come then.
type schedule struct {
	rng      *rand.Rand
	holdKill time.Duration // no kill -9 before this much of the run
	bag      []string
	owed     int
}

func newSchedule(rng *rand.Rand, holdKill time.Duration) *schedule {
	return &schedule{rng: rng, holdKill: holdKill}
}

// next is the kind of the next fault, elapsed into the run.
func (s *schedule) next(elapsed time.Duration) string {
	if s.owed > 0 && elapsed >= s.holdKill {
		s.owed--
		return kindKill
	}
	for {
		if len(s.bag) == 0 {
			s.bag = append(s.bag, allKinds...)
			s.rng.Shuffle(len(s.bag), func(i, j int) { s.bag[i], s.bag[j] = s.bag[j], s.bag[i] })
		}
		k := s.bag[0]
		s.bag = s.bag[1:]
		if k == kindKill && elapsed < s.holdKill {
			s.owed++
			continue
		}
		return k
	}
}
