package archive_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
)

// fileChunk is the content of each exported file (1 MiB of random bytes: incompressible, like
// most uploads, and checksummed in full).
func fileChunk(tb testing.TB) []byte {
	tb.Helper()
	b := make([]byte, 1<<20)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return b
}

func bucket(tb testing.TB) *blob.Bucket {
	tb.Helper()
	b, err := fileblob.OpenBucket(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// exportTo runs the export pipeline (zip -> sealing writer -> object writer) for size bytes
// in 1 MiB files and returns the bytes written to the object.
func exportTo(tb testing.TB, b *blob.Bucket, s archive.KeySealer, content []byte, size int64) int64 {
	tb.Helper()
	ctx := context.Background()
	bw, err := b.NewWriter(ctx, "export", nil)
	require.NoError(tb, err)
	enc, err := archive.NewEncryptingWriter(ctx, bw, s, "0190d2a4-7e9c-7c1a-9a57-111111111111", 0)
	require.NoError(tb, err)
	z := archive.NewBuilder(enc, "e", "o", time.Unix(0, 0))
	for i := int64(0); i*int64(len(content)) < size; i++ {
		require.NoError(tb, z.AddBytes(fmt.Sprintf("apps/x/versions/1/files/f%06d.bin", i), content))
		z.Count("files", 1)
	}
	_, err = z.Close()
	require.NoError(tb, err)
	require.NoError(tb, enc.Close())
	require.NoError(tb, bw.Close())
	return enc.Written()
}

// copyTo is the baseline: io.Copy of the same bytes to the same object store.
func copyTo(tb testing.TB, b *blob.Bucket, content []byte, size int64) {
	tb.Helper()
	ctx := context.Background()
	bw, err := b.NewWriter(ctx, "copy", nil)
	require.NoError(tb, err)
	for i := int64(0); i*int64(len(content)) < size; i++ {
		_, err := io.Copy(bw, bytesReader(content))
		require.NoError(tb, err)
	}
	require.NoError(tb, bw.Close())
}

type onceReader struct {
	b []byte
}

func (r *onceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &onceReader{b: b} }

// BenchmarkExportVsCopy: export throughput against io.Copy of the same bytes to the same
// object store (record the ratio of the two MB/s).
func BenchmarkExportVsCopy(b *testing.B) {
	content := fileChunk(b)
	const size = 64 << 20
	b.Run("export", func(b *testing.B) {
		bk := bucket(b)
		s := newLocalSealer(b)
		b.SetBytes(size)
		for b.Loop() {
			exportTo(b, bk, s, content, size)
		}
	})
	b.Run("io.Copy", func(b *testing.B) {
		bk := bucket(b)
		b.SetBytes(size)
		for b.Loop() {
			copyTo(b, bk, content, size)
		}
	})
}

// peakHeap runs fn while sampling the heap, and returns the highest heap in use above the
// level before fn.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base && m.HeapInuse-base > peak.Load() {
				peak.Store(m.HeapInuse - base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// TestExportMemoryIndependentOfSize: the peak heap of a 1 GiB export stays within 1.2x of a
// 100 MiB one (the pipeline streams; nothing grows with the export).
func TestExportMemoryIndependentOfSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1.1 GiB")
	}
	content := fileChunk(t)
	s := newLocalSealer(t)
	measure := func(size int64) uint64 {
		bk := bucket(t)
		var written int64
		p := peakHeap(func() { written = exportTo(t, bk, s, content, size) })
		require.Greater(t, written, size)
		return p
	}
	small := measure(100 << 20)
	large := measure(1 << 30)
	t.Logf("peak heap above baseline: 100 MiB export %.1f MiB, 1 GiB export %.1f MiB (ratio %.2f)",
		float64(small)/(1<<20), float64(large)/(1<<20), float64(large)/float64(small))
	require.LessOrEqual(t, float64(large), 1.2*float64(small), "memory grows with the export size")
}
