package fakeheygen

import (
	"net/http"
	"slices"
)

// avatarItem is one group or look reduced to what serving needs: immutable strings and its
// precomputed JSON, so the caller's Catalogue is not retained and encoding is done once.
type avatarItem struct {
	id         string
	groupID    string // "" when null
	avatarType string
	ownership  string
	json       []byte

	// Looks only, for video creation.
	status       string // "" when null
	engines      []string
	defaultVoice string // "" when null
}

// Indexes of the precomputed lists: ownership any/public/private, avatar type any/three.
const (
	ownAny = iota
	ownPublic
	ownPrivate
	numOwn
)

var avatarTypes = []string{"", AvatarTypeStudio, AvatarTypeDigitalTwin, AvatarTypePhoto}

type avatarSnapshot struct {
	groups    []avatarItem
	looks     []avatarItem
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
	if i := slices.Index(avatarTypes, t); i > 0 {
		return i
	}
	return 0
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// compileAvatars indexes c. The first of duplicate ids wins for the get endpoints; lists
// show all.
func compileAvatars(c Catalogue) *avatarSnapshot {
	s := &avatarSnapshot{
		groups:       make([]avatarItem, len(c.Groups)),
		looks:        make([]avatarItem, len(c.Looks)),
		groupByID:    make(map[string]int, len(c.Groups)),
		lookByID:     make(map[string]int, len(c.Looks)),
		looksByGroup: make(map[string][]int32),
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		s.groups[i] = avatarItem{id: g.ID, ownership: g.Ownership, json: marshal(g)}
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
		it := avatarItem{
			id: l.ID, groupID: deref(l.GroupID), avatarType: l.AvatarType, ownership: l.Ownership,
			json: marshal(l), status: deref(l.Status), defaultVoice: deref(l.DefaultVoiceID),
			engines: slices.Clone(l.SupportedAPIEngines),
		}
		if it.groupID != "" {
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

// look returns the look with id, for video creation.
func (s *avatarSnapshot) look(id string) (*avatarItem, bool) {
	i, ok := lookup(s.lookByID, id)
	if !ok {
		return nil, false
	}
	return &s.looks[i], true
}

func writeAvatarPage(w http.ResponseWriter, items []avatarItem, list []int32, off, limit int, hash uint64) {
	start, end, next := offsetPage(len(list), off, limit, hash)
	page := make([][]byte, 0, end-start)
	for _, i := range list[start:end] {
		page = append(page, items[i].json)
	}
	writeList(w, page, next)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, _ string) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	own, ok := parseEnum(w, q, "ownership", OwnershipPublic, OwnershipPrivate)
	if !ok {
		return
	}
	limit, ok := parseLimit(w, q, DefaultLimit, MaxLimit)
	if !ok {
		return
	}
	hash := filterHash("groups", own)
	off, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	snap := s.avatars.Load()
	writeAvatarPage(w, snap.groups, snap.groupLists[ownIndex(own)], off, limit, hash)
}

func (s *Server) listLooks(w http.ResponseWriter, r *http.Request, _ string) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	groupID := q.Get("group_id")
	if groupID != "" && !validID(groupID) {
		invalidParam(w, "group_id", "group_id is not a valid avatar group id")
		return
	}
	avatarType, ok := parseEnum(w, q, "avatar_type", avatarTypes[1:]...)
	if !ok {
		return
	}
	own, ok := parseEnum(w, q, "ownership", OwnershipPublic, OwnershipPrivate)
	if !ok {
		return
	}
	limit, ok := parseLimit(w, q, DefaultLimit, MaxLimit)
	if !ok {
		return
	}
	hash := filterHash("looks", groupID, avatarType, own)
	off, ok := parseToken(w, q, hash)
	if !ok {
		return
	}
	snap := s.avatars.Load()
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
	writeAvatarPage(w, snap.looks, list, off, limit, hash)
}

func (s *Server) getGroup(w http.ResponseWriter, _ *http.Request, id string) {
	snap := s.avatars.Load()
	i, ok := lookup(snap.groupByID, id)
	if !ok {
		writeError(w, http.StatusNotFound, "avatar_not_found", "Avatar group "+truncate(id, 200)+" not found", "group_id")
		return
	}
	writeData(w, http.StatusOK, snap.groups[i].json)
}

func (s *Server) getLook(w http.ResponseWriter, _ *http.Request, id string) {
	l, ok := s.avatars.Load().look(id)
	if !ok {
		writeError(w, http.StatusNotFound, "avatar_not_found", "Avatar "+truncate(id, 200)+" not found", "look_id")
		return
	}
	writeData(w, http.StatusOK, l.json)
}
