package snapshot

// Selection says how an API answer was narrowed (`/api/v1/snapshot?top=N`,
// `?user=`, `?comm=`, `?unit=`): which rows the client asked for, and how
// many rows each table had before top cut it, so that "20 of 1,804 groups"
// can be said and a row that fell below the cut is not taken for one that
// vanished. Absent from a whole snapshot.
type Selection struct {
	Top  int    `json:"top,omitempty"`
	User string `json:"user,omitempty"`
	Comm string `json:"comm,omitempty"`
	Unit string `json:"unit,omitempty"`
	// Rows that passed the filters, before top: of Processes.Groups,
	// Processes.Users, Processes.Units, Sockets.Processes and
	// Processes.List.
	Groups  int `json:"groups"`
	Users   int `json:"users"`
	Units   int `json:"units"`
	Holders int `json:"holders"`
	List    int `json:"list"`
}

// CutGroups says whether top left groups out.
func (s *Selection) CutGroups(kept int) bool { return s != nil && s.Groups > kept }

// CutHolders says whether top left socket holders out.
func (s *Selection) CutHolders(kept int) bool { return s != nil && s.Holders > kept }
