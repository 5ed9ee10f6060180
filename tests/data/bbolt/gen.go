// Generator for the bbolt test databases in this folder (test data only).
//
// Build offline with Debian's packaged bbolt sources (golang-go +
// golang-github-coreos-bbolt-dev, bbolt v1.3.6):
//
//	cd tests/data/bbolt && GO111MODULE=off GOPATH=/usr/share/gocode go run gen.go
//
// It writes:
//
//	small_pages.db  PageSize 1024: branch pages, an overflow value, inline and
//	                paged nested buckets, NextSequence, deleted keys.
//	nofreelist.db   NoFreelistSync (freelist page id 0xFFFF...FFFF), default
//	                page size, one bucket with a deleted key.
package main

import (
	"fmt"
	"os"
	"strings"

	bolt "go.etcd.io/bbolt"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func smallPages() {
	_ = os.Remove("small_pages.db")
	db, err := bolt.Open("small_pages.db", 0o600, &bolt.Options{PageSize: 1024})
	must(err)
	must(db.Update(func(tx *bolt.Tx) error {
		big, err := tx.CreateBucket([]byte("big"))
		must(err)
		for i := 0; i < 300; i++ {
			k := fmt.Sprintf("key-%04d", i)
			must(big.Put([]byte(k), []byte(fmt.Sprintf("value-%04d", i))))
		}
		must(big.Put([]byte("huge"), []byte(strings.Repeat("0123456789abcdef", 200))))
		outer, err := tx.CreateBucket([]byte("outer"))
		must(err)
		must(outer.Put([]byte("plain"), []byte("top")))
		inner, err := outer.CreateBucket([]byte("inner"))
		must(err)
		must(inner.Put([]byte("a"), []byte("1")))
		must(inner.Put([]byte("b"), []byte("2")))
		for i := 0; i < 7; i++ {
			_, err = inner.NextSequence()
			must(err)
		}
		paged, err := outer.CreateBucket([]byte("paged"))
		must(err)
		for i := 0; i < 100; i++ {
			must(paged.Put([]byte(fmt.Sprintf("p%03d", i)), []byte(strings.Repeat("x", i))))
		}
		_, err = paged.NextSequence()
		must(err)
		_, err = tx.CreateBucket([]byte("empty"))
		return err
	}))
	must(db.Update(func(tx *bolt.Tx) error {
		big := tx.Bucket([]byte("big"))
		for i := 0; i < 300; i += 50 {
			must(big.Delete([]byte(fmt.Sprintf("key-%04d", i))))
		}
		return tx.Bucket([]byte("outer")).Put([]byte("deleted-soon"), []byte("secret-evidence"))
	}))
	must(db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("outer")).Delete([]byte("deleted-soon"))
	}))
	must(db.Close())
}

func noFreelist() {
	_ = os.Remove("nofreelist.db")
	db, err := bolt.Open("nofreelist.db", 0o600, &bolt.Options{NoFreelistSync: true})
	must(err)
	must(db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("things"))
		must(err)
		must(b.Put([]byte("keep"), []byte("kept-value")))
		return b.Put([]byte("gone"), []byte("gone-value"))
	}))
	must(db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("things")).Delete([]byte("gone"))
	}))
	must(db.Close())
}

func main() {
	smallPages()
	noFreelist()
}
