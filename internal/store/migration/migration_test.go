package migration

import (
	"testing"
	"testing/fstest"
)

func TestLoadOrdersByVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_later.sql":  {Data: []byte("SELECT 10")},
		"m/0002_second.sql": {Data: []byte("SELECT 2")},
		"m/0001_init.sql":   {Data: []byte("SELECT 1")},
	}
	got, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Version != 1 || got[1].Version != 2 || got[2].Version != 10 || got[2].SQL != "SELECT 10" {
		t.Fatalf("Load = %+v", got)
	}
}

func TestLoadRefusesBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no prefix":      {"m/init.sql": {}},
		"not sql":        {"m/0001_init.txt": {}},
		"zero version":   {"m/0000_init.sql": {}},
		"shared version": {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
