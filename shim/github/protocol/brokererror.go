package protocol

import (
	"encoding/json"
	"fmt"
)

// Broker error kinds (Sdk/RSWebApi/Contracts/BrokerErrorKind.cs).
const (
	ErrorRunnerNotFound            = "RunnerNotFound"
	ErrorRunnerVersionTooOld       = "RunnerVersionTooOld"
	ErrorHostedRunnerDeprovisioned = "HostedRunnerDeprovisioned"
	ErrorRunnerSessionInvalid      = "RunnerSessionInvalid"
	ErrorAcknowledgeJobNotFound    = "AcknowledgeJobNotFound"
)

// brokerErrorSource is the only source the runner trusts.
const brokerErrorSource = "actions-broker-listener"

// BrokerError is the broker's error body {source, errorKind, statusCode,
// errorMessage} (Sdk/RSWebApi/Contracts/BrokerError.cs).
type BrokerError struct {
	Source     string `json:"source"`
	ErrorKind  string `json:"errorKind"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"errorMessage"`
	// HTTPStatus is the status of the HTTP response that carried it.
	HTTPStatus int `json:"-"`
}

func (e *BrokerError) Error() string {
	return fmt.Sprintf("broker error %s (status %d): %s", e.ErrorKind, e.StatusCode, e.Message)
}

// parseBrokerError returns the error body if it is one from the broker
// listener, as BrokerHttpClient.TryParseErrorBody decides.
func parseBrokerError(r reply) *BrokerError {
	var be BrokerError
	if json.Unmarshal(r.body, &be) != nil || be.Source != brokerErrorSource {
		return nil
	}
	be.HTTPStatus = r.status
	if be.StatusCode == 0 {
		be.StatusCode = r.status
	}
	return &be
}
