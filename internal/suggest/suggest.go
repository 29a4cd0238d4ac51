// Package suggest finds the known name a misspelled one was meant to be,
// for "did you mean" hints in error messages.
package suggest

import "strings"

// Closest returns the candidate word most likely meant, or "" when none is
// close: a case-insensitive match first, else the smallest edit distance
// (insertions, deletions, substitutions, compared case-insensitively) of at
// most 2. Ties go to the earlier candidate.
func Closest(word string, candidates []string) string {
	lw := strings.ToLower(word)
	best, bestD := "", maxDistance+1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == lw {
			return c
		}
		if d := distance(lw, lc); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// maxDistance is the most edits a suggestion may be away: enough for a
// dropped, doubled or swapped letter, not so many that an unrelated name of
// the same length is offered.
const maxDistance = 2

// distance is the Levenshtein distance between a and b, by runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
