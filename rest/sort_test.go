package rest

import (
	"slices"
	"strings"

	"github.com/tockd/tock/store"
)

func sortJobs(js []store.Job) {
	slices.SortFunc(js, func(a, b store.Job) int { return strings.Compare(a.ID, b.ID) })
}
