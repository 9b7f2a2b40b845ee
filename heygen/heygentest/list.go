package heygentest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
)

// Page sizes of the list endpoints, as HeyGen documents them.
const (
	DefaultLimit = 20
	MaxLimit     = 50
)

// item is one catalogue entry reduced to what serving needs: immutable strings and its
// precomputed JSON, so the caller's Catalogue is not retained and encoding is done once.
type item struct {
	id         string
	groupID    string // "" when null
	avatarType string
	ownership  string
	json       []byte
}

// Indexes of the precomputed lists: ownership any/public/private, avatar type any/three.
const (
	ownAny = iota
	ownPublic
	ownPrivate
	numOwn
)

var avatarTypes = []string{"", AvatarTypeStudio, AvatarTypeDigitalTwin, AvatarTypePhoto}

type snapshot struct {
	groups    []item
	looks     []item
	groupByID map[string]int
	lookByID  map[string]int

	groupLists   [numOwn][]int32
	lookLists    [4][numOwn][]int32 // [avatar type index][ownership index]
	looksByGroup map[string][]int32
}

func ownIndex(o string) int {
	switch o {
	case OwnershipPublic:
		return ownPublic
	case OwnershipPrivate:
		return ownPrivate
	}
	return ownAny
}

func typeIndex(t string) int {
	for i, v := range avatarTypes {
		if i > 0 && v == t {
			return i
		}
	}
	return 0
}

// marshal encodes v without HTML escaping (HeyGen's URLs keep their '&').
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null") // not reachable for Group and Look
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// compile indexes c. The first of duplicate ids wins for the get endpoints; lists show all.
func compile(c Catalogue) *snapshot {
	s := &snapshot{
		groups:       make([]item, len(c.Groups)),
		looks:        make([]item, len(c.Looks)),
		groupByID:    make(map[string]int, len(c.Groups)),
		lookByID:     make(map[string]int, len(c.Looks)),
		looksByGroup: make(map[string][]int32),
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		s.groups[i] = item{id: g.ID, ownership: g.Ownership, json: marshal(g)}
		if _, dup := s.groupByID[g.ID]; !dup {
			s.groupByID[g.ID] = i
		}
		s.groupLists[ownAny] = append(s.groupLists[ownAny], int32(i))
		if o := ownIndex(g.Ownership); o != ownAny {
			s.groupLists[o] = append(s.groupLists[o], int32(i))
		}
	}
	for i := range c.Looks {
		l := &c.Looks[i]
		it := item{id: l.ID, avatarType: l.AvatarType, ownership: l.Ownership, json: marshal(l)}
		if l.GroupID != nil {
			it.groupID = *l.GroupID
			s.looksByGroup[it.groupID] = append(s.looksByGroup[it.groupID], int32(i))
		}
		s.looks[i] = it
		if _, dup := s.lookByID[l.ID]; !dup {
			s.lookByID[l.ID] = i
		}
		// A look with an unknown type or ownership appears only in the unfiltered lists.
		types, owns := []int{0}, []int{ownAny}
		if ti := typeIndex(l.AvatarType); ti != 0 {
			types = append(types, ti)
		}
		if oi := ownIndex(l.Ownership); oi != ownAny {
			owns = append(owns, oi)
		}
		for _, t := range types {
			for _, o := range owns {
				s.lookLists[t][o] = append(s.lookLists[t][o], int32(i))
			}
		}
	}
	return s
}

func invalidParam(w http.ResponseWriter, param, message string) {
	writeError(w, http.StatusBadRequest, "invalid_parameter", message, param)
}

// parseQuery parses the query string, answering 400 itself when it is malformed.
func parseQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "Malformed query string", "")
		return nil, false
	}
	return q, true
}

func parseLimit(w http.ResponseWriter, q url.Values) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return DefaultLimit, true
	}
	n := 0
	ok := len(v) <= 4
	for i := 0; ok && i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			ok = false
		} else {
			n = n*10 + int(v[i]-'0')
		}
	}
	if !ok || n < 1 || n > MaxLimit {
		invalidParam(w, "limit", "limit must be an integer between 1 and 50")
		return 0, false
	}
	return n, true
}

func parseOwnership(w http.ResponseWriter, q url.Values) (string, bool) {
	switch v := q.Get("ownership"); v {
	case "", OwnershipPublic, OwnershipPrivate:
		return v, true
	}
	invalidParam(w, "ownership", "ownership must be one of: public, private")
	return "", false
}

func filterHash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// maxTokenLen bounds the work spent on a token; real ones are about 30 characters.
const maxTokenLen = 128

// encodeToken makes an opaque page token: base64url of "o<offset>.<filter hash>".
func encodeToken(offset int, hash uint64) string {
	b := make([]byte, 0, 40)
	b = append(b, 'o')
	b = strconv.AppendInt(b, int64(offset), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, hash, 16)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken returns the offset a token stands for, answering 400 itself when the token
// is garbage or was issued for other filters.
func parseToken(w http.ResponseWriter, q url.Values, hash uint64) (int, bool) {
	tok := q.Get("token")
	if tok == "" {
		return 0, true
	}
	bad := func() (int, bool) {
		invalidParam(w, "token", "token is invalid or does not match the request's filters")
		return 0, false
	}
	if len(tok) > maxTokenLen {
		return bad()
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 4 || raw[0] != 'o' {
		return bad()
	}
	dot := bytes.IndexByte(raw, '.')
	if dot < 2 {
		return bad()
	}
	off, err := strconv.ParseUint(string(raw[1:dot]), 10, 31)
	if err != nil {
		return bad()
	}
	h, err := strconv.ParseUint(string(raw[dot+1:]), 16, 64)
	if err != nil || h != hash {
		return bad()
	}
	return int(off), true
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, snap *snapshot) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	own, ok := parseOwnership(w, q)
	if !ok {
		return
	}
	limit, ok := parseLimit(w, q)
	if !ok {
		return
	}
	hash := filterHash("groups", own)
	off, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	writePage(w, snap.groups, snap.groupLists[ownIndex(own)], off, limit, hash)
}

func (s *Server) listLooks(w http.ResponseWriter, r *http.Request, snap *snapshot) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	groupID := q.Get("group_id")
	if groupID != "" && !validID(groupID) {
		invalidParam(w, "group_id", "group_id is not a valid avatar group id")
		return
	}
	avatarType := q.Get("avatar_type")
	if avatarType != "" && typeIndex(avatarType) == 0 {
		invalidParam(w, "avatar_type", "avatar_type must be one of: studio_avatar, digital_twin, photo_avatar")
		return
	}
	own, ok := parseOwnership(w, q)
	if !ok {
		return
	}
	limit, ok := parseLimit(w, q)
	if !ok {
		return
	}
	hash := filterHash("looks", groupID, avatarType, own)
	off, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	var list []int32
	if groupID == "" {
		list = snap.lookLists[typeIndex(avatarType)][ownIndex(own)]
	} else {
		for _, i := range snap.looksByGroup[groupID] {
			l := &snap.looks[i]
			if (avatarType == "" || l.avatarType == avatarType) && (own == "" || l.ownership == own) {
				list = append(list, i)
			}
		}
	}
	writePage(w, snap.looks, list, off, limit, hash)
}

// writePage writes list[off:off+limit] of items as a v3 list page. An offset past the end
// (a token from before the catalogue shrank) gives an empty last page.
func writePage(w http.ResponseWriter, items []item, list []int32, off, limit int, hash uint64) {
	off = min(off, len(list))
	end := min(off+limit, len(list))
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	buf.WriteString(`{"data":[`)
	for k, i := range list[off:end] {
		if k > 0 {
			buf.WriteByte(',')
		}
		buf.Write(items[i].json)
	}
	if end < len(list) {
		buf.WriteString(`],"has_more":true,"next_token":"`)
		buf.WriteString(encodeToken(end, hash))
		buf.WriteString(`"}`)
	} else {
		buf.WriteString(`],"has_more":false,"next_token":null}`)
	}
	writeBody(w, http.StatusOK, buf.Bytes())
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
}
