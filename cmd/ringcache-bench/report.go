package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/ringcache/ringcache/internal/storm"
)

// report turns the JSON results in a directory into SVG charts next to
// them: the storm's throughput over time, bytes by source, and the
// failover latencies.
func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("dir", "docs/bench", "directory with the benchmarks' JSON results")
	doc := fs.String("doc", "", "also regenerate the summary section of this Markdown file (docs/benchmarks.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var made []string
	if rs, err := readStorm(filepath.Join(*dir, "storm.json")); err == nil {
		var series []series
		for _, r := range rs {
			var ys []float64
			for _, b := range r.Timeline {
				ys = append(ys, float64(b)/0.25/1e6)
			}
			series = append(series, struct {
				name string
				ys   []float64
			}{r.Name, ys})
		}
		if err := writeSVG(filepath.Join(*dir, "storm-throughput.svg"), lineChart("Scale-up storm: aggregate read throughput", "seconds", "MB/s", 0.25, series)); err != nil {
			return err
		}
		var bars []bar
		for _, r := range rs {
			if r.LocalBytes+r.PeerBytes+r.DirectBytes == 0 {
				bars = append(bars, bar{r.Name, []float64{float64(r.OriginBytes) / 1e6, 0, 0}})
				continue
			}
			bars = append(bars, bar{r.Name, []float64{float64(r.OriginBytes) / 1e6, r.PeerBytes / 1e6, r.LocalBytes / 1e6}})
		}
		if err := writeSVG(filepath.Join(*dir, "storm-bytes.svg"), barChart("Bytes by source (MB)", []string{"pulled from origin", "read from peers", "read from the local node"}, bars)); err != nil {
			return err
		}
		made = append(made, "storm-throughput.svg", "storm-bytes.svg")
	}
	if rs, err := readStorm(filepath.Join(*dir, "failover.json")); err == nil {
		var bars []bar
		for _, r := range rs {
			bars = append(bars, bar{r.Name, []float64{r.P50ms, r.P99ms, r.MaxMs}})
		}
		if err := writeSVG(filepath.Join(*dir, "failover-latency.svg"), barChart("1 MiB read latency (ms)", []string{"p50", "p99", "max"}, bars)); err != nil {
			return err
		}
		made = append(made, "failover-latency.svg")
	}
	if len(made) == 0 {
		return fmt.Errorf("no storm.json or failover.json in %s", *dir)
	}
	if *doc != "" {
		if err := updateDoc(*doc, *dir); err != nil {
			return err
		}
		made = append(made, *doc)
	}
	fmt.Println("wrote", strings.Join(made, ", "))
	return nil
}

func readStorm(path string) ([]storm.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rs []storm.Result
	return rs, json.Unmarshal(b, &rs)
}

type series = struct {
	name string
	ys   []float64
}

type bar struct {
	label string
	vals  []float64
}

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759"}

const (
	chartW, chartH = 720.0, 360.0
	padL, padR     = 70.0, 20.0
	padT, padB     = 40.0, 70.0
)

func svgHeader(b *bytes.Buffer, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
}

func axes(b *bytes.Buffer, ymax float64, ylabel string) {
	x0, y0, y1 := padL, chartH-padB, padT
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`, x0, y0, chartW-padR, y0)
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x0, y0, x0, y1)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		y := y0 - (y0-y1)*float64(i)/4
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="end">%.0f</text><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#ddd"/>`+"\n", x0-6, y+4, v, x0, y, chartW-padR, y)
	}
	fmt.Fprintf(b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">%s</text>`+"\n", (y0+y1)/2, (y0+y1)/2, ylabel)
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func lineChart(title, xlabel, ylabel string, step float64, ss []series) []byte {
	var b bytes.Buffer
	svgHeader(&b, title)
	ymax, n := 0.0, 0
	for _, s := range ss {
		n = max(n, len(s.ys))
		for _, y := range s.ys {
			ymax = max(ymax, y)
		}
	}
	ymax = niceMax(ymax)
	axes(&b, ymax, ylabel)
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	for i, s := range ss {
		var pts []string
		for j, y := range s.ys {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", padL+plotW*float64(j)/float64(max(n-1, 1)), chartH-padB-plotH*y/ymax))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", palette[i%len(palette)], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			padL+float64(i)*220, chartH-28, palette[i%len(palette)], padL+float64(i)*220+16, chartH-18, html.EscapeString(s.name))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s (0 to %.1f)</text>`+"\n", padL+plotW/2, chartH-padB+18, xlabel, float64(n)*step)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func barChart(title string, legend []string, bars []bar) []byte {
	var b bytes.Buffer
	svgHeader(&b, title)
	ymax := 0.0
	for _, g := range bars {
		for _, v := range g.vals {
			ymax = max(ymax, v)
		}
	}
	ymax = niceMax(ymax)
	axes(&b, ymax, "")
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	groupW := plotW / float64(max(len(bars), 1))
	barW := groupW * 0.8 / float64(max(len(legend), 1))
	for i, g := range bars {
		x0 := padL + groupW*float64(i) + groupW*0.1
		for j, v := range g.vals {
			h := plotH * v / ymax
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x0+barW*float64(j), chartH-padB-h, barW-2, h, palette[j%len(palette)])
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+groupW*0.4, chartH-padB+16, html.EscapeString(g.label))
	}
	for j, l := range legend {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			padL+float64(j)*200, chartH-28, palette[j%len(palette)], padL+float64(j)*200+16, chartH-18, html.EscapeString(l))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func writeSVG(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
