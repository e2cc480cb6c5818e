package suite

// The chart is drawn here with image/png and basicfont's fixed 7×13 face
// rather than with a plotting library or gnuplot: a few horizontal bars and
// labels do not need more, and the suite then needs no program beyond the
// servers it measures.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

const (
	chartWidth  = 1100
	labelWidth  = 330 // target labels, left
	barLeft     = labelWidth + 10
	barWidth    = 470
	valueLeft   = barLeft + barWidth + 12
	rowHeight   = 20
	barHeight   = 14
	panelHeader = 40 // shape title and axis labels
	chartTop    = 50
	chartBottom = 30
)

var (
	chartBG   = color.RGBA{0xff, 0xff, 0xff, 0xff}
	chartInk  = color.RGBA{0x20, 0x20, 0x20, 0xff}
	chartGrid = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	chartDim  = color.RGBA{0x70, 0x70, 0x70, 0xff}
	// familyColor gives each server its colour.
	familyColor = map[string]color.RGBA{
		"echo":       {0x99, 0x99, 0x99, 0xff},
		"redis":      {0xd6, 0x27, 0x28, 0xff},
		"beanstalkd": {0x2c, 0xa0, 0x2c, 0xff},
		"tock":       {0x1f, 0x77, 0xb4, 0xff},
	}
)

// logAxis maps req/s onto [0, barWidth] on a log scale from lo to hi, both
// powers of ten.
type logAxis struct{ lo, hi float64 }

func newLogAxis(rows []Row) logAxis {
	minV, maxV := math.Inf(1), 0.0
	for _, r := range rows {
		if r.Throughput > 0 {
			minV, maxV = min(minV, r.Throughput), max(maxV, r.Throughput)
		}
	}
	if maxV == 0 {
		return logAxis{1e3, 1e7}
	}
	lo := math.Pow(10, math.Floor(math.Log10(minV)))
	if minV < 2*lo {
		lo /= 10 // keep the shortest bar visible
	}
	hi := math.Pow(10, math.Ceil(math.Log10(maxV)))
	if hi <= lo {
		hi = lo * 10
	}
	return logAxis{lo, hi}
}

func (a logAxis) x(v float64) int {
	if v <= a.lo {
		return 0
	}
	f := math.Log10(v/a.lo) / math.Log10(a.hi/a.lo)
	return int(math.Round(min(f, 1) * barWidth))
}

// fmtRate names a power of ten of req/s: 1k, 10k, 1M.
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// Chart draws the report's rows as a PNG: one panel per shape, one bar per
// target, its length the median req/s on a log scale, labelled with the
// figures of the table.
func Chart(r *Report) ([]byte, error) {
	byShape := map[string][]Row{}
	for _, row := range r.Rows {
		byShape[row.Shape] = append(byShape[row.Shape], row)
	}
	height := chartTop + chartBottom
	for _, s := range r.Shapes {
		height += panelHeader + rowHeight*len(byShape[s]) + 10
	}
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(chartBG), image.Point{}, draw.Src)
	ax := newLogAxis(r.Rows)

	text(img, 10, 20, chartInk, "Median requests per second, log scale (same load generator, loopback); "+
		"labels: k req/s, x echo, server core-us per request")
	text(img, 10, 38, chartDim, fmt.Sprintf("%s, %d CPUs, %d repetition(s) of ~%s; see results.md",
		r.Started.Format("2006-01-02 15:04 MST"), r.Host.CPUs, r.Reps, fmtRunTime(r.RunTimeNs)))

	y := chartTop
	for _, s := range r.Shapes {
		rows := byShape[s]
		text(img, 10, y+24, chartInk, shapeTitle(s))
		// Decade grid lines and their labels.
		panelBottom := y + panelHeader + rowHeight*len(rows)
		for v := ax.lo; v <= ax.hi*1.0001; v *= 10 {
			x := barLeft + ax.x(v)
			fill(img, image.Rect(x, y+panelHeader-4, x+1, panelBottom), chartGrid)
			text(img, x-3*len(fmtRate(v)), y+panelHeader-8, chartDim, fmtRate(v))
		}
		for i, row := range rows {
			top := y + panelHeader + i*rowHeight
			text(img, 10, top+barHeight-2, chartInk, clip(row.Label, (labelWidth-10)/7))
			if row.Runs == 0 {
				text(img, barLeft+4, top+barHeight-2, chartDim, "failed")
				continue
			}
			w := max(ax.x(row.Throughput), 1)
			c, ok := familyColor[row.Family]
			if !ok {
				c = chartDim
			}
			fill(img, image.Rect(barLeft, top+2, barLeft+w, top+2+barHeight), c)
			text(img, valueLeft, top+barHeight-2, chartInk, fmt.Sprintf("%8s k/s  %5sx  %6s us",
				fmtKRate(row.Throughput), fmtRatio(row.XEcho), fmtCoreUS(row.CoreUS)))
		}
		y = panelBottom + 10
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func shapeTitle(s string) string {
	sh, err := ParseShape(s)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%dx%d: %d connections x %d in flight each", sh.Clients, sh.Pipeline, sh.Clients, sh.Pipeline)
}

func fmtRunTime(ns int64) string { return time.Duration(ns).String() }

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// text draws s with its baseline at y. basicfont has glyphs for ASCII
// only: × and µ are drawn as x and u.
func text(img *image.RGBA, x, y int, c color.Color, s string) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.Point26_6{X: fixed.I(x), Y: fixed.I(y)}}
	d.DrawString(asciiLabel.Replace(s))
}

var asciiLabel = strings.NewReplacer("×", "x", "µ", "u", "–", "-")

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "~"
}
