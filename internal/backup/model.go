// Package backup moves a cluster's data in and out: the logical export
// (one JSON document, streaming) and import (validate everything, stage,
// commit in one raft step), readers for foreign formats (EMQX 4.x export,
// Mosquitto dynamic-security), and physical node backups.
package backup

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with an input file, located precisely
// enough for an operator to find and fix it.
type Problem struct {
	Table  string `json:"table,omitempty"`  // section of the file (a Roost table or a foreign section)
	Record int    `json:"record,omitempty"` // 1-based record number within the section; 0: the section or file itself
	Field  string `json:"field,omitempty"`  // JSON field name within the record
	Msg    string `json:"message"`
}

func (p Problem) String() string {
	loc := p.Table
	if p.Record > 0 {
		loc += fmt.Sprintf(" record %d", p.Record)
	}
	if p.Field != "" {
		loc += fmt.Sprintf(" field %q", p.Field)
	}
	loc = strings.TrimSpace(loc)
	if loc == "" {
		return p.Msg
	}
	return loc + ": " + p.Msg
}

// Record is one row to import: a record of a replicated table (Value is
// the store record type: *store.User, *store.ACLRule, *store.Ban,
// *store.Retained, *store.APIKey, *store.Admin, *store.ConfigOverride)
// under its table key. ACL rules carry no key: their order in the input
// is their evaluation order.
type Record struct {
	Table string
	Key   string
	Value any
	// Settle, when set, is given the stored record under the same key
	// (when there is one) before the record is planned and staged, and
	// returns the value to import instead of Value, or nil for Value. It
	// is for records whose encoding is not a function of the input: an
	// API key secret hashed with a fresh random salt keeps the stored
	// salt when the stored hash already verifies the same secret, so that
	// importing the same file again changes nothing.
	Settle func(current []byte) any
}

// Dataset is what a foreign-format reader produces: records per table in
// input order, the sections it did not import (reported, never silently
// dropped), and every problem found.
type Dataset struct {
	Records  []Record
	Skipped  []string // e.g. "rules (12 records): not supported by Roost"
	Notes    []string // mapping notes worth showing to the operator
	Problems []Problem
}
