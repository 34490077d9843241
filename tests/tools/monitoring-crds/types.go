//go:build tools

// Package monitoringcrds only pins the prometheus-operator API types controller-gen reads (see build.sh).
package monitoringcrds

import _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
