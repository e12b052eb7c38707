package smtpd

import (
	"errors"
	"io"
	"sync/atomic"
)

// dataBudget bounds the memory all DATA phases hold together. Each message
// is read into memory (the DKIM check and the header scan need all of it),
// up to MaxMessageBytes (10 MiB); without a budget, 400 slow senders of
// 10 MiB messages hold 4 GiB. The budget is reserved chunk by chunk as the
// message arrives; a message that cannot get its next chunk is read on
// and discarded, and answered 452 4.3.1 (RFC 5321 §4.2.5: "insufficient
// system storage", a temporary failure: a real sender tries again later).
type dataBudget struct {
	limit int64 // 0: no budget
	used  atomic.Int64
}

// errOverBudget: the message did not fit in the DATA memory budget.
var errOverBudget = errors.New("smtpd: DATA memory budget exhausted")

// reserve takes n bytes of the budget, or reports false.
func (b *dataBudget) reserve(n int64) bool {
	if b.limit <= 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *dataBudget) release(n int64) {
	if b.limit > 0 && n > 0 {
		b.used.Add(-n)
	}
}

// dataChunk is the unit in which a message's memory is reserved.
const dataChunk = 64 << 10

// readData reads r up to limit+1 bytes (so the caller can tell "too
// large"), reserving from b the capacity it holds, in chunks that double
// from dataChunk; release gives it back. When the budget runs out, the
// rest of r is discarded and err is errOverBudget.
func (b *dataBudget) readData(r io.Reader, limit int64) (body []byte, release func(), err error) {
	var held int64
	release = func() { b.release(held); held = 0 }
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, release, nil // the caller sees it is too large
			}
			grow := min(max(int64(cap(buf)), dataChunk), limit+1-int64(cap(buf)))
			if !b.reserve(grow) {
				// Give the budget back before discarding the rest, which
				// lasts as long as the sender takes to send it.
				release()
				buf = nil
				_, _ = io.Copy(io.Discard, r)
				return nil, release, errOverBudget
			}
			held += grow
			next := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(next, buf)
			buf = next
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, release, nil
		}
		if err != nil {
			return buf, release, err
		}
	}
}
