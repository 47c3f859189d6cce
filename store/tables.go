package store

// The tables' names, as GORM's default naming gave them (the plural of the
// type's name) before the store named them itself.

// TableName is the workflows table.
func (Workflow) TableName() string { return "workflows" }

// TableName is the jobs table.
func (Job) TableName() string { return "jobs" }

// TableName is the definitions table.
func (Definition) TableName() string { return "definitions" }

// TableName is the intents table.
func (Intent) TableName() string { return "intents" }

// TableName is the meta table.
func (Meta) TableName() string { return "meta" }

// TableName is the transfers table.
func (Transfer) TableName() string { return "transfers" }
