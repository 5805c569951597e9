package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/roostmq/roost/internal/store"
)

// Pagination defaults: ?page= counts from 1, ?limit= is the page size.
const (
	defaultLimit = 100
	maxLimit     = 10000
)

// Page is the body of every list response.
type Page[T any] struct {
	Data []T  `json:"data"`
	Meta Meta `json:"meta"`
}

// Meta describes one page of a list: Count is the number of records that
// match (all pages), HasNext whether a later page has any.
type Meta struct {
	Page    int  `json:"page"`
	Limit   int  `json:"limit"`
	Count   int  `json:"count"`
	HasNext bool `json:"hasnext"`
}

type pageReq struct{ page, limit int }

func (p pageReq) offset() int { return (p.page - 1) * p.limit }

func parsePage(r *http.Request) (pageReq, error) {
	p := pageReq{page: 1, limit: defaultLimit}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, badRequest("query parameter \"page\": must be a positive integer, got %q", v)
		}
		p.page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, badRequest("query parameter \"limit\": must be an integer from 1 to %d, got %q", maxLimit, v)
		}
		p.limit = n
	}
	return p, nil
}

// listTable pages through the records of table whose keys start with
// prefix and pass keep (nil: all), in key order. Counting looks at keys
// only; just the page's records are decoded.
func listTable[R, T any](tx *store.Tx, table, prefix string, keep func(key string) bool, p pageReq, conv func(rec *R) T) (Page[T], error) {
	out := Page[T]{Data: []T{}, Meta: Meta{Page: p.page, Limit: p.limit}}
	skip := p.offset()
	total := -1
	if prefix == "" && keep == nil {
		total = tx.Count(table)
	}
	err := tx.Seek(table, prefix, func(key string, val []byte) (bool, error) {
		if !strings.HasPrefix(key, prefix) {
			return false, nil
		}
		if keep != nil && !keep(key) {
			return true, nil
		}
		out.Meta.Count++
		switch {
		case skip > 0:
			skip--
		case len(out.Data) < p.limit:
			var rec R
			if err := json.Unmarshal(val, &rec); err != nil {
				return false, fmt.Errorf("decode %s/%s: %w", table, key, err)
			}
			out.Data = append(out.Data, conv(&rec))
		default:
			out.Meta.HasNext = true
			if total >= 0 {
				return false, nil // the count is known: stop at the page's end
			}
		}
		return true, nil
	})
	if total >= 0 {
		out.Meta.Count = total
	}
	return out, err
}
