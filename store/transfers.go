package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/somaflow/somaflow/model"
)

// Transfer is a file transfer: one of a workflow's FileTransfers (Index is
// its index in the definition) or one registered alone (WorkflowID 0,
// Index -1), as soma-workflow's register_transfer.
type Transfer struct {
	ID         int64 `gorm:"primaryKey"`
	WorkflowID int64 `gorm:"index"`
	Index      int
	Name       string
	ClientPath string
	// ClientPaths is a JSON array of the files moved together, or nil.
	ClientPaths []byte
	// EnginePath is where the files are on the computing resource.
	EnginePath string
	// Status is one of soma-workflow's transfer statuses.
	Status string
	// Output: the transfer's files are made by a job (initial status
	// "do not exist"); they come back to the client.
	Output bool
	// Light: the computing resource is this machine and the engine uses
	// the client path itself (soma-workflow's light mode): nothing is
	// copied.
	Light bool
	// Progress is the JSON progress of the transfer under way or last cut
	// (see TransferProgress).
	Progress []byte
	// Error says why the last transfer failed ("" when it did not).
	Error         string
	DeletePending bool
	Expiration    time.Time
	Created       time.Time
}

// TransferProgress is how far a copy went: bytes done of total, and per
// file of a directory.
type TransferProgress struct {
	Total int64          `json:"total"`
	Done  int64          `json:"done"`
	Files []FileProgress `json:"files,omitempty"`
}

// FileProgress is one file of a directory transfer.
type FileProgress struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Done  int64  `json:"done"`
	IsDir bool   `json:"dir,omitempty"`
}

// TransfersDir is the resource's transfer dir under a state dir (as
// soma-workflow's transfered_files).
func TransfersDir(stateDir string) string { return filepath.Join(stateDir, "transfers") }

// WorkflowTransfersDir holds the transferred files of one workflow.
func WorkflowTransfersDir(stateDir string, wfID int64) string {
	return filepath.Join(TransfersDir(stateDir), strconv.FormatInt(wfID, 10))
}

// transferEnginePath is where a staged transfer's files go: a directory of
// their own, named after the workflow and index (or the transfer id for a
// transfer registered alone), holding the client path's base name.
func transferEnginePath(stateDir string, wfID int64, index int, id int64, clientPath string) string {
	base := filepath.Base(clientPath)
	if wfID == 0 {
		return filepath.Join(TransfersDir(stateDir), "r"+strconv.FormatInt(id, 10), base)
	}
	return filepath.Join(WorkflowTransfersDir(stateDir, wfID), strconv.Itoa(index), base)
}

// newTransfer makes the row of a FileTransfer.
func newTransfer(ft *model.FileTransfer, wfID int64, index int, light bool, exp time.Time) Transfer {
	t := Transfer{WorkflowID: wfID, Index: index, Name: ft.Name, ClientPath: ft.ClientPath, Light: light,
		Output: ft.InitialStatus == model.TransferDoNotExist, Expiration: exp, Created: time.Now().UTC()}
	if ft.ClientPaths != nil {
		t.ClientPaths, _ = json.Marshal(ft.ClientPaths)
	}
	switch {
	case t.Output:
		t.Status = model.TransferDoNotExist
	case light:
		t.Status = model.TransferOnBothSides
	default:
		t.Status = model.TransferOnClientSide
	}
	return t
}

// createTransfers stores the transfers of a new workflow (in its
// transaction).
func createTransfers(tx *gorm.DB, dir string, wfID int64, def *model.Workflow, light bool, exp time.Time) error {
	for i, ft := range def.Transfers {
		t := newTransfer(ft, wfID, i, light, exp)
		if light {
			t.EnginePath = ft.ClientPath
		} else {
			t.EnginePath = transferEnginePath(dir, wfID, i, 0, ft.ClientPath)
		}
		if err := tx.Create(&t).Error; err != nil {
			return fmt.Errorf("store transfer %d: %w", i, err)
		}
	}
	return nil
}

// RegisterTransfer stores a transfer that belongs to no workflow.
func (s *Store) RegisterTransfer(ctx context.Context, ft *model.FileTransfer, exp time.Time) (*Transfer, error) {
	t := newTransfer(ft, 0, -1, false, exp.UTC())
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&t).Error; err != nil {
			return err
		}
		t.EnginePath = transferEnginePath(s.Dir, 0, -1, t.ID, ft.ClientPath)
		return tx.Model(&Transfer{}).Where("id = ?", t.ID).Update("engine_path", t.EnginePath).Error
	})
	if err != nil {
		return nil, fmt.Errorf("register transfer: %w", err)
	}
	return &t, nil
}

// GetTransfer returns one transfer.
func (s *Store) GetTransfer(ctx context.Context, id int64) (*Transfer, error) {
	var t Transfer
	if err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&t).Error; err != nil {
		return nil, fmt.Errorf("read transfer %d: %w", id, err)
	}
	if t.ID == 0 {
		return nil, fmt.Errorf("transfer %d: %w", id, ErrNotFound)
	}
	return &t, nil
}

// Transfers lists transfers: those of a workflow (wfID > 0, in definition
// order), or every one (wfID 0), oldest first.
func (s *Store) Transfers(ctx context.Context, wfID int64) ([]Transfer, error) {
	var ts []Transfer
	q := s.db.WithContext(ctx)
	if wfID > 0 {
		q = q.Where("workflow_id = ?", wfID).Order(`"index"`)
	} else {
		q = q.Order("id")
	}
	if err := q.Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	return ts, nil
}

// TransferStatuses returns the status of each transfer of a workflow, by
// index (what the engine reads to know which inputs arrived).
func (s *Store) TransferStatuses(ctx context.Context, wfID int64) (map[int]string, error) {
	var rows []struct {
		Index  int
		Status string
	}
	if err := s.db.WithContext(ctx).Model(&Transfer{}).Select(`"index", status`).Where("workflow_id = ?", wfID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("transfer statuses: %w", err)
	}
	m := make(map[int]string, len(rows))
	for _, r := range rows {
		m[r.Index] = r.Status
	}
	return m, nil
}

// BeginTransfer moves a transfer from one of the statuses from to status
// (a transfer under way), with its first progress; it fails with
// ErrBusy when the transfer is not in one of from (another process moves it).
func (s *Store) BeginTransfer(ctx context.Context, id int64, from []string, status string, p TransferProgress) error {
	data, _ := json.Marshal(p)
	res := s.db.WithContext(ctx).Model(&Transfer{}).Where("id = ? AND status IN ?", id, from).
		Updates(map[string]any{"status": status, "progress": data, "error": ""})
	if res.Error != nil {
		return fmt.Errorf("transfer %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("transfer %d: %w", id, ErrBusy)
	}
	return nil
}

// ErrBusy: a transfer is not in the status an operation needs (it is under
// way in another process, or has nothing to move).
var ErrBusy = fmt.Errorf("transfer not in the expected status")

// SetTransferProgress records how far a transfer under way went.
func (s *Store) SetTransferProgress(ctx context.Context, id int64, p TransferProgress) error {
	data, _ := json.Marshal(p)
	return s.db.WithContext(ctx).Model(&Transfer{}).Where("id = ?", id).Update("progress", data).Error
}

// EndTransfer records the end of a transfer: its new status, and the error
// when it failed ("" when it succeeded; the progress is kept then, to show
// where it was cut).
func (s *Store) EndTransfer(ctx context.Context, id int64, status, errText string) error {
	up := map[string]any{"status": status, "error": errText}
	if errText == "" {
		up["progress"] = nil
	}
	return s.db.WithContext(ctx).Model(&Transfer{}).Where("id = ?", id).Updates(up).Error
}

// DeleteTransfer removes a transfer, or only marks it delete-pending when
// its workflow still exists (its jobs reference it: it goes with them). It
// returns whether the removal was deferred.
func (s *Store) DeleteTransfer(ctx context.Context, id int64) (deferred bool, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t Transfer
		if err := tx.Where("id = ?", id).Limit(1).Find(&t).Error; err != nil {
			return err
		}
		if t.ID == 0 {
			return fmt.Errorf("transfer %d: %w", id, ErrNotFound)
		}
		if t.WorkflowID != 0 {
			var n int64
			if err := tx.Model(&Workflow{}).Where("id = ?", t.WorkflowID).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				deferred = true
				return tx.Model(&Transfer{}).Where("id = ?", id).Update("delete_pending", true).Error
			}
		}
		return tx.Where("id = ?", id).Delete(&Transfer{}).Error
	})
	return deferred, err
}

// TempPathInfo is what a status document says of a temporary path.
type TempPathInfo struct {
	Name        string `json:"name"`
	IsDirectory bool   `json:"is_directory"`
	Suffix      string `json:"suffix"`
}

func tempPathInfos(def *model.Workflow) []byte {
	if len(def.TempPaths) == 0 {
		return nil
	}
	l := make([]TempPathInfo, len(def.TempPaths))
	for i, tp := range def.TempPaths {
		l[i] = TempPathInfo{Name: tp.Name, IsDirectory: tp.IsDirectory, Suffix: tp.Suffix}
	}
	data, _ := json.Marshal(l)
	return data
}

// TempPaths returns the temporary paths of a workflow's definition.
func (s *Store) TempPaths(ctx context.Context, wfID int64) ([]TempPathInfo, error) {
	var d Definition
	if err := s.db.WithContext(ctx).Select("workflow_id, temp_paths").Where("workflow_id = ?", wfID).Limit(1).Find(&d).Error; err != nil {
		return nil, fmt.Errorf("read workflow %d: %w", wfID, err)
	}
	var l []TempPathInfo
	if len(d.TempPaths) > 0 {
		if err := json.Unmarshal(d.TempPaths, &l); err != nil {
			return nil, fmt.Errorf("workflow %d temporary paths: %w", wfID, err)
		}
	}
	return l, nil
}
