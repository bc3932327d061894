package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FindRepoRoot walks up from the working directory to the directory that
// holds configs/models.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "configs", "models")); err == nil && st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("configs/models not found in the working directory or any parent; pass a config path instead of a name")
		}
		dir = parent
	}
}

// LoadNamed resolves a model config given as a path (anything with a path
// separator or a .json suffix) or as a name in root/configs/models (root ""
// = FindRepoRoot). A config without a name takes its file's.
func LoadNamed(arg, root string) (Config, error) {
	path := arg
	if !strings.ContainsRune(arg, os.PathSeparator) && !strings.HasSuffix(arg, ".json") {
		if root == "" {
			r, err := FindRepoRoot()
			if err != nil {
				return Config{}, fmt.Errorf("model %q: %w", arg, err)
			}
			root = r
		}
		path = filepath.Join(root, "configs", "models", strings.ToLower(arg)+".json")
		if _, err := os.Stat(path); err != nil {
			names, _ := filepath.Glob(filepath.Join(root, "configs", "models", "*.json"))
			for i, n := range names {
				names[i] = strings.TrimSuffix(filepath.Base(n), ".json")
			}
			return Config{}, fmt.Errorf("model %q: no %s (known: %s)", arg, path, strings.Join(names, ", "))
		}
	}
	c, err := LoadConfig(path)
	if err != nil {
		return Config{}, err
	}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return c, nil
}
