package faults

import (
	"bufio"
	"net/http"
	"strconv"
)

const (
	oversizeHead = `{"data":[`
	oversizeTail = `],"has_more":false,"next_token":null}`
	// An oversize item is a look with every field set around a fixed-width counter.
	oversizeItemA = `{"id":"oversize_look_`
	oversizeItemB = `","name":"Oversize Filler Look","avatar_type":"studio_avatar","group_id":"oversize_group",` +
		`"gender":"female","default_voice_id":"00000000000000000000000000000000",` +
		`"preview_image_url":"https://files2.heygen.ai/avatar/v3/oversize/full/2.2/preview_target.webp",` +
		`"preview_video_url":"https://files2.heygen.ai/avatar/v3/oversize/full/2.2/preview_video_target.mp4",` +
		`"image_width":1920,"image_height":1080,"preferred_orientation":"landscape",` +
		`"supported_api_engines":["avatar_iii","avatar_iv"],"tags":["business","filler"],` +
		`"status":null,"error":null,"created_at":1700000000}`
	oversizeDigits = 12
	// maxOversize keeps the item counter within oversizeDigits (1 TiB is plenty).
	maxOversize = 1 << 40
)

// writeOversize streams a valid list body of at least f.OversizeBytes bytes, stopping
// when the request ends.
func writeOversize(w http.ResponseWriter, r *http.Request, status int, f *Fault) {
	itemLen := len(oversizeItemA) + oversizeDigits + len(oversizeItemB)
	need := min(f.OversizeBytes, maxOversize) - len(oversizeHead) - len(oversizeTail)
	n := 1
	if need > itemLen {
		n = (need + 1 + itemLen) / (itemLen + 1) // n items and n-1 commas cover need
	}
	total := len(oversizeHead) + n*itemLen + (n - 1) + len(oversizeTail)
	h := w.Header()
	h.Del("Content-Length")
	if f.OversizeContentLength {
		h.Set("Content-Length", strconv.Itoa(total))
	}
	w.WriteHeader(status)
	if !f.OversizeContentLength {
		// Send the headers now, or net/http computes a Content-Length for small bodies.
		_ = http.NewResponseController(w).Flush()
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(oversizeHead)
	ctx := r.Context()
	num := make([]byte, 0, oversizeDigits)
	for i := range n {
		if i%64 == 0 && ctx.Err() != nil {
			return
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString(oversizeItemA)
		num = strconv.AppendInt(num[:0], int64(i), 10)
		for range oversizeDigits - len(num) {
			_ = bw.WriteByte('0')
		}
		_, _ = bw.Write(num)
		if _, err := bw.WriteString(oversizeItemB); err != nil {
			return // the client went away
		}
	}
	_, _ = bw.WriteString(oversizeTail)
	_ = bw.Flush()
}
