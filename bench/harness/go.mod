module github.com/difflore/difflore/bench/harness

go 1.26.8
