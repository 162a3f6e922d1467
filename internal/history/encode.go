package history

import (
	"encoding/binary"
	"errors"
	"math"
)

// One stored value holds every series of a stream at one time, sorted by
// series id:
//
//	raw:        0x01 n k index { Δid value }                                   n times
//	aggregated: 0x02 n k index { Δid count min max−min last−min (avg−min)×1000 } n times
//
// All numbers are varints (value and min zig-zag signed), in the series'
// stored unit (see scaleOf). A count that does not change costs two or three
// bytes a sample, and an aggregate of one that did not change five or six.
//
// Entries come in blocks of blockLen; the first of a block holds its id
// whole rather than as a difference, and the index holds each block's first
// id and byte offset (k pairs), so reading one series out of a thousand
// decodes one block instead of everything before it.

const (
	fmtRaw byte = 1
	fmtAgg byte = 2
)

const blockLen = 32

// avgScale keeps an aggregate's average to a thousandth of the stored unit.
const avgScale = 1000

var errCorrupt = errors.New("history: corrupt sample")

// val is one series' raw sample in a Record.
type val struct {
	id   uint64
	v    int64
	proc bool
}

// agg is one series' value over an interval (a raw sample is an interval of
// one: n 1, min = max = last = avg).
type agg struct {
	id             uint64
	n              uint64
	min, max, last int64
	avg            float64
}

// encoder builds stored values; its buffers are reused.
type encoder struct {
	payload, index []byte
}

// raw appends the stored value of vals (sorted by id) to b.
func (e *encoder) raw(b []byte, vals []val) []byte {
	e.payload, e.index = e.payload[:0], e.index[:0]
	var prev uint64
	for i, v := range vals {
		if i%blockLen == 0 {
			e.index = binary.AppendUvarint(e.index, v.id)
			e.index = binary.AppendUvarint(e.index, uint64(len(e.payload)))
			prev = 0
		}
		e.payload = binary.AppendUvarint(e.payload, v.id-prev)
		e.payload = binary.AppendVarint(e.payload, v.v)
		prev = v.id
	}
	return e.finish(b, fmtRaw, len(vals))
}

// agg appends the stored value of as (sorted by id) to b.
func (e *encoder) agg(b []byte, as []agg) []byte {
	e.payload, e.index = e.payload[:0], e.index[:0]
	var prev uint64
	for i, a := range as {
		if i%blockLen == 0 {
			e.index = binary.AppendUvarint(e.index, a.id)
			e.index = binary.AppendUvarint(e.index, uint64(len(e.payload)))
			prev = 0
		}
		e.payload = binary.AppendUvarint(e.payload, a.id-prev)
		e.payload = binary.AppendUvarint(e.payload, a.n)
		e.payload = binary.AppendVarint(e.payload, a.min)
		e.payload = binary.AppendUvarint(e.payload, uint64(a.max-a.min))
		e.payload = binary.AppendUvarint(e.payload, uint64(a.last-a.min))
		d := math.Round((a.avg - float64(a.min)) * avgScale)
		e.payload = binary.AppendUvarint(e.payload, uint64(max(d, 0)))
		prev = a.id
	}
	return e.finish(b, fmtAgg, len(as))
}

func (e *encoder) finish(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64((n+blockLen-1)/blockLen))
	b = append(b, e.index...)
	return append(b, e.payload...)
}

// decoder walks one stored value. bbolt's values are only valid inside their
// transaction: decode them there.
type decoder struct {
	b       []byte // what is left to decode
	kind    byte
	n, i    uint64 // entries, and the next one's number
	blocks  uint64
	index   []byte // k pairs of first id and offset
	payload []byte
	id      uint64
	err     error
}

func newDecoder(b []byte) decoder {
	if len(b) == 0 || (b[0] != fmtRaw && b[0] != fmtAgg) {
		return decoder{err: errCorrupt}
	}
	d := decoder{b: b[1:], kind: b[0]}
	d.n = d.uvarint()
	d.blocks = d.uvarint()
	if d.err == nil && d.blocks != (d.n+blockLen-1)/blockLen {
		d.err = errCorrupt
	}
	start := d.b
	for i := uint64(0); i < d.blocks && d.err == nil; i++ {
		d.uvarint()
		d.uvarint()
	}
	if d.err != nil {
		return d
	}
	d.index = start[:len(start)-len(d.b)]
	d.payload = d.b
	return d
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// next decodes the next series' value into a; false at the end or on
// corruption (d.err).
func (d *decoder) next(a *agg) bool {
	if d.err != nil || d.i >= d.n {
		return false
	}
	if d.i%blockLen == 0 {
		d.id = 0
	}
	d.i++
	d.id += d.uvarint()
	a.id = d.id
	if d.kind == fmtRaw {
		v := d.varint()
		a.n, a.min, a.max, a.last, a.avg = 1, v, v, v, float64(v)
	} else {
		a.n = d.uvarint()
		a.min = d.varint()
		a.max = a.min + int64(d.uvarint())
		a.last = a.min + int64(d.uvarint())
		a.avg = float64(a.min) + float64(d.uvarint())/avgScale
	}
	return d.err == nil
}

// seek moves to the block that would hold id.
func (d *decoder) seek(id uint64) {
	if d.err != nil {
		return
	}
	idx := d.index
	var blk, off uint64
	for i := uint64(0); i < d.blocks; i++ {
		first, n := binary.Uvarint(idx)
		if n <= 0 {
			d.err = errCorrupt
			return
		}
		o, m := binary.Uvarint(idx[n:])
		if m <= 0 {
			d.err = errCorrupt
			return
		}
		idx = idx[n+m:]
		if first > id {
			break
		}
		blk, off = i, o
	}
	if off > uint64(len(d.payload)) {
		d.err = errCorrupt
		return
	}
	d.b, d.i = d.payload[off:], blk*blockLen
}

// find decodes the value of one series, if the stored value has it.
func find(b []byte, id uint64) (agg, bool, error) {
	d := newDecoder(b)
	d.seek(id)
	var a agg
	for d.next(&a) {
		if a.id == id {
			return a, true, nil
		}
		if a.id > id {
			break
		}
	}
	return agg{}, false, d.err
}

// merge folds b, which comes after a in time, into a.
func (a *agg) merge(b agg) {
	if a.n == 0 {
		*a = b
		return
	}
	n := a.n + b.n
	a.avg = (a.avg*float64(a.n) + b.avg*float64(b.n)) / float64(n)
	a.n = n
	a.min = min(a.min, b.min)
	a.max = max(a.max, b.max)
	a.last = b.last
}
