//go:build !linux

package weights

import (
	"errors"
	"os"
)

// Other platforms read tensors with ReadAt.
const mmapSupported = false

func mmapFile(*os.File, int) ([]byte, error) {
	return nil, errors.New("mmap is not used on this platform")
}

func munmapFile([]byte) error { return nil }

func willNeed([]byte) {}
