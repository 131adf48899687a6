package ledger

// StatusCancelled is a request its client cancelled.
const StatusCancelled RequestStatus = 99

func (st Settings) lowBalanceThreshold() int64 { return 0 }
