package fakeheygen

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Video is a video as GET /v3/videos/{video_id} and GET /v3/videos return it. Nil
// pointers are sent as explicit JSON nulls, except FailureCode, FailureMessage and
// OutputLanguage, which HeyGen sends only when they apply and are absent otherwise.
type Video struct {
	ID                string   `json:"id"`
	Title             *string  `json:"title"`
	Status            string   `json:"status"`
	FolderID          *string  `json:"folder_id"`
	CreatedAt         *int64   `json:"created_at"`
	CompletedAt       *int64   `json:"completed_at"`
	Duration          *float64 `json:"duration"`
	VideoURL          *string  `json:"video_url"`
	CaptionedVideoURL *string  `json:"captioned_video_url"`
	SubtitleURL       *string  `json:"subtitle_url"`
	ThumbnailURL      *string  `json:"thumbnail_url"`
	GifURL            *string  `json:"gif_url"`
	VideoPageURL      *string  `json:"video_page_url"`
	FailureCode       *string  `json:"failure_code,omitempty"`
	FailureMessage    *string  `json:"failure_message,omitempty"`
	OutputLanguage    *string  `json:"output_language,omitempty"`
}

// Values of Video.Status, and the extra ones of the create response and the bulk
// statuses endpoint.
const (
	VideoStatusPending    = "pending"
	VideoStatusProcessing = "processing"
	VideoStatusCompleted  = "completed"
	VideoStatusFailed     = "failed"

	VideoStatusWaiting  = "waiting"   // the create response's initial status
	VideoStatusQueued   = "queued"    // GET /v3/videos/statuses for pending
	VideoStatusNotFound = "not_found" // GET /v3/videos/statuses for unknown ids
)

// FailRender, anywhere in a created video's script or title, makes its render fail with
// failure_code RenderFailureCode once it has been processing.
const (
	FailRender        = "FAIL_RENDER"
	RenderFailureCode = "render_failed"
)

// IdempotencyTTL is how long an Idempotency-Key of POST /v3/videos is remembered.
const IdempotencyTTL = 24 * time.Hour

// videoRecord is one video. A created video has render times and moves from pending to
// processing to final; a seeded one (Options.Videos) is final from the start.
type videoRecord struct {
	seq          int // creation order; also the position in list tokens
	final        Video
	rendered     bool
	processingAt time.Time
	doneAt       time.Time
}

// view returns the video as it is at now.
func (v *videoRecord) view(now time.Time) Video {
	if !v.rendered || !now.Before(v.doneAt) {
		return v.final
	}
	status := VideoStatusProcessing
	if now.Before(v.processingAt) {
		status = VideoStatusPending
	}
	f := &v.final
	return Video{ID: f.ID, Title: f.Title, Status: status, FolderID: f.FolderID, CreatedAt: f.CreatedAt}
}

// idemEntry is the fate of one Idempotency-Key: in progress until done, then the
// response to replay.
type idemEntry struct {
	at     time.Time
	done   bool
	status int
	body   []byte
}

type videoStore struct {
	mu      sync.Mutex
	byID    map[string]*videoRecord
	order   []*videoRecord // ascending seq; lists go newest first
	nextSeq int
	idem    map[string]*idemEntry
	newKeys int           // since the last pruning
	limiter *rate.Limiter // nil: no create limit

	createDelay, pending, processing time.Duration
}

func (st *videoStore) init(opts Options, now time.Time) {
	st.byID = make(map[string]*videoRecord)
	st.idem = make(map[string]*idemEntry)
	st.nextSeq = 1
	st.createDelay = opts.CreateDelay
	st.pending = max(orDefault(opts.RenderPending, DefaultRenderPending), 0)
	st.processing = max(orDefault(opts.RenderProcessing, DefaultRenderProcessing), 0)
	if r := orDefault(opts.CreateRate, DefaultCreateRate); r > 0 {
		st.limiter = rate.NewLimiter(rate.Limit(r), max(orDefault(opts.CreateBurst, DefaultCreateBurst), 1))
		st.limiter.SetLimitAt(now, rate.Limit(r)) // start the bucket full at Clock's time
	}
	// Seeded videos are listed after created ones, in the order given.
	for i := len(opts.Videos) - 1; i >= 0; i-- {
		st.add(&videoRecord{final: opts.Videos[i]})
	}
}

func (st *videoStore) add(v *videoRecord) {
	v.seq = st.nextSeq
	st.nextSeq++
	st.order = append(st.order, v)
	if _, dup := st.byID[v.final.ID]; !dup {
		st.byID[v.final.ID] = v
	}
}

func (st *videoStore) get(id string, now time.Time) (Video, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, ok := st.byID[id]
	if !ok {
		return Video{}, false
	}
	return v.view(now), true
}

// allowCreate takes a token of the create limit, or says after how many whole seconds
// one will be there. Called with st.mu held.
func (st *videoStore) allowCreate(now time.Time) (ok bool, retryAfter int) {
	if st.limiter == nil {
		return true, 0
	}
	res := st.limiter.ReserveN(now, 1)
	d := res.DelayFrom(now)
	if d == 0 {
		return true, 0
	}
	res.CancelAt(now)
	return false, max(1, int(math.Ceil(d.Seconds())))
}

// pruneIdempotency drops expired keys every 1024 new keys, so that memory follows the
// number of keys of the last 24 hours. Called with st.mu held.
func (st *videoStore) pruneIdempotency(now time.Time) {
	if st.newKeys++; st.newKeys < 1024 {
		return
	}
	st.newKeys = 0
	for k, e := range st.idem {
		if e.done && now.Sub(e.at) >= IdempotencyTTL {
			delete(st.idem, k)
		}
	}
}

func newVideoID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// videoIDFor returns the id of a video created with an Idempotency-Key: a hash of the
// key, so that a demo or a document can show the same id on every run (a repeat of the
// key replays the first answer anyway), unless a video already has that id (the key
// was reused after IdempotencyTTL), when it is random like a video made without a key.
func (s *Server) videoIDFor(key string) string {
	if key == "" {
		return newVideoID()
	}
	sum := sha256.Sum256([]byte("fakeheygen video\x00" + key))
	id := hex.EncodeToString(sum[:16])
	s.videos.mu.Lock()
	_, taken := s.videos.byID[id]
	s.videos.mu.Unlock()
	if taken {
		return newVideoID()
	}
	return id
}

func (s *Server) getVideo(w http.ResponseWriter, _ *http.Request, id string) {
	v, ok := s.videos.get(id, s.now())
	if !ok {
		writeError(w, http.StatusNotFound, "video_not_found", "Video "+truncate(id, 200)+" not found", "video_id")
		return
	}
	writeData(w, http.StatusOK, marshal(v))
}

func (s *Server) deleteVideo(w http.ResponseWriter, _ *http.Request, id string) {
	st := &s.videos
	st.mu.Lock()
	v, ok := st.byID[id]
	if ok {
		delete(st.byID, id)
		st.order = slices.DeleteFunc(st.order, func(o *videoRecord) bool { return o == v })
	}
	st.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "video_not_found", "Video "+truncate(id, 200)+" not found", "video_id")
		return
	}
	writeData(w, http.StatusOK, marshal(struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}{id, true}))
}

// listVideos pages newest first. Its token is the sequence number of the last video
// served, so videos created between pages do not shift the following pages.
func (s *Server) listVideos(w http.ResponseWriter, r *http.Request, _ string) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	title, folder := q.Get("title"), q.Get("folder_id")
	limit, ok := parseLimit(w, q, DefaultVideoLimit, MaxVideoLimit)
	if !ok {
		return
	}
	hash := filterHash("videos", strings.ToLower(title), folder)
	after, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	now := s.now()
	lowTitle := strings.ToLower(title)
	var page [][]byte
	next, last := "", 0
	st := &s.videos
	st.mu.Lock()
	for i := len(st.order) - 1; i >= 0; i-- {
		v := st.order[i]
		f := &v.final
		if after != 0 && v.seq >= after ||
			folder != "" && deref(f.FolderID) != folder ||
			title != "" && !strings.Contains(strings.ToLower(deref(f.Title)), lowTitle) {
			continue
		}
		if len(page) == limit {
			next = encodeToken(last, hash)
			break
		}
		page = append(page, marshal(v.view(now)))
		last = v.seq
	}
	st.mu.Unlock()
	writeList(w, page, next)
}

type statusItem struct {
	VideoID   *string      `json:"video_id"`
	Status    string       `json:"status"`
	Error     *statusError `json:"error"`
	BatchID   *string      `json:"batch_id"`
	ItemIndex *int         `json:"item_index"`
}

type statusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// splitIDs splits a comma-separated query value, dropping empty elements.
func splitIDs(v string) []string {
	var ids []string
	for id := range strings.SplitSeq(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// videoStatuses answers GET /v3/videos/statuses. The fake has no batches: every batch id
// is reported as one not_found entry.
func (s *Server) videoStatuses(w http.ResponseWriter, r *http.Request, _ string) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	ids, batches := splitIDs(q.Get("video_ids")), splitIDs(q.Get("batch_ids"))
	switch n := len(ids) + len(batches); {
	case n == 0:
		invalidParam(w, "video_ids", "video_ids or batch_ids is required")
		return
	case n > MaxStatusesPerCall:
		invalidParam(w, "video_ids", "at most "+strconv.Itoa(MaxStatusesPerCall)+" video_ids and batch_ids together, got "+strconv.Itoa(n))
		return
	}
	now := s.now()
	items := make([][]byte, 0, len(ids)+len(batches))
	for _, id := range ids {
		it := statusItem{VideoID: strp(id), Status: VideoStatusNotFound}
		if v, ok := s.videos.get(id, now); ok {
			it.Status = v.Status
			if it.Status == VideoStatusPending {
				it.Status = VideoStatusQueued
			}
			if it.Status == VideoStatusFailed {
				it.Error = &statusError{Code: deref(v.FailureCode), Message: deref(v.FailureMessage)}
			}
		}
		items = append(items, marshal(it))
	}
	for _, b := range batches {
		items = append(items, marshal(statusItem{BatchID: strp(b), Status: VideoStatusNotFound}))
	}
	writeList(w, items, "")
}

// DemoVideos returns a few finished videos for demo mode, in two folders: completed ones
// and a failed one, to give GET /v3/videos something to list before anything is created.
func DemoVideos() []Video {
	base := int64(1767225600) // 2026-01-01
	mk := func(i int, title, folder string, failed bool) Video {
		n := strconv.Itoa(i)
		id := fmt.Sprintf("%016x%016x", filterHash("demo video", n), filterHash("demo video id", n))
		created := base + int64(i)*86400
		v := Video{ID: id, Title: strp(title), CreatedAt: int64p(created), Status: VideoStatusCompleted}
		if folder != "" {
			v.FolderID = strp(folder)
		}
		if failed {
			v.Status = VideoStatusFailed
			v.FailureCode = strp("avatar_processing_failed")
			v.FailureMessage = strp("The avatar could not be rendered; try another look")
			return v
		}
		fillRender(&v, created+300, float64(30+i*7), "mp4", i%2 == 0)
		return v
	}
	return []Video{
		mk(0, "Welcome to the team", "onboarding", false),
		mk(1, "Benefits overview", "onboarding", false),
		mk(2, "Security training", "onboarding", true),
		mk(3, "Q1 product update", "marketing", false),
		mk(4, "Launch teaser", "marketing", false),
		mk(5, "Untitled Video", "", false),
	}
}

// fillRender sets the finished video's timing and URLs. The URLs look like HeyGen's
// presigned ones; they lead nowhere.
func fillRender(v *Video, completedAt int64, duration float64, format string, captioned bool) {
	base := "https://files2.heygen.ai/aws_pacific/avatar_tmp/" + v.ID
	sig := "?Expires=" + strconv.FormatInt(completedAt+7*86400, 10) + "&Signature=fake-signature&Key-Pair-Id=K38HBHX5LX3X2H"
	v.CompletedAt = int64p(completedAt)
	v.Duration = &duration
	v.VideoURL = strp(base + "/video." + format + sig)
	if captioned {
		v.CaptionedVideoURL = strp(base + "/video_caption." + format + sig)
	}
	v.SubtitleURL = strp(base + "/captions.srt" + sig)
	v.ThumbnailURL = strp(base + "/thumbnail.jpeg")
	v.GifURL = strp(base + "/preview.gif")
	v.VideoPageURL = strp("https://app.heygen.com/videos/" + v.ID)
}
