// Peer "gorilla": the Go server pledge-ws is measured against, in the same run.
//
// gorilla/websocket (Debian's golang-github-gorilla-websocket-dev), reading the exchange the
// same way the other peers do (bullet-public, token, subscribe). Each tick is encoded once
// (websocket.PreparedMessage) and handed to one writer goroutine per connection through a
// one-slot channel (latest value wins), so a slow client never blocks the others.
//
// Run: KUCOIN_API_URL=http://127.0.0.1:9000 PORT=8003 bench/.build/gorilla-peer
// Built by bench/run.py (GOPATH=/usr/share/gocode, GO111MODULE=off: no network).
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type client struct {
	conn   *websocket.Conn
	prices chan *websocket.PreparedMessage // one slot: the latest price not yet written
	pongs  chan struct{}
	done   chan struct{}
}

var (
	mu      sync.Mutex
	clients = map[*client]struct{}{}
	latest  *websocket.PreparedMessage
	pong    = []byte(`{"code":1,"data":"pong"}`)
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func bullet(api string) (string, time.Duration, error) {
	resp, err := http.Post(api+"/api/v1/bullet-public", "application/json", nil)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var b struct {
		Data struct {
			Token           string `json:"token"`
			InstanceServers []struct {
				Endpoint     string `json:"endpoint"`
				PingInterval int    `json:"pingInterval"`
			} `json:"instanceServers"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || len(b.Data.InstanceServers) == 0 {
		return "", 0, fmt.Errorf("bad bullet: %v", err)
	}
	s := b.Data.InstanceServers[0]
	url := fmt.Sprintf("%s?token=%s&connectId=gorilla-%d", s.Endpoint, b.Data.Token, time.Now().UnixNano())
	return url, time.Duration(s.PingInterval) * time.Millisecond, nil
}

func broadcast(pm *websocket.PreparedMessage) {
	mu.Lock()
	latest = pm
	for c := range clients {
		select {
		case c.prices <- pm:
		default: // the writer still has an older price: replace it
			select {
			case <-c.prices:
			default:
			}
			select {
			case c.prices <- pm:
			default:
			}
		}
	}
	mu.Unlock()
}

func feed(api, symbol string) {
	topic := "/market/ticker:" + symbol
	for {
		url, interval, err := bullet(api)
		if err == nil {
			err = readExchange(url, interval, topic, symbol)
		}
		log.Printf("feed: %v; reconnecting", err)
		time.Sleep(time.Second)
	}
}

func readExchange(url string, interval time.Duration, topic, symbol string) error {
	ex, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer ex.Close()
	var wmu sync.Mutex
	send := func(v any) error { wmu.Lock(); defer wmu.Unlock(); return ex.WriteJSON(v) }
	if err := send(map[string]any{"id": "sub1", "type": "subscribe", "topic": topic, "response": true}); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(interval):
				_ = send(map[string]any{"id": "p" + strconv.Itoa(n), "type": "ping"})
			}
		}
	}()
	for {
		var msg struct {
			Type  string `json:"type"`
			Topic string `json:"topic"`
			Data  struct {
				Price    string `json:"price"`
				Sequence string `json:"sequence"`
				Time     int64  `json:"time"`
			} `json:"data"`
		}
		if err := ex.ReadJSON(&msg); err != nil {
			return err
		}
		if msg.Type != "message" || msg.Topic != topic {
			continue
		}
		frame, _ := json.Marshal(map[string]any{"code": 0, "data": msg.Data.Price, "symbol": symbol, "seq": msg.Data.Sequence, "ts": msg.Data.Time})
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
		if err == nil {
			broadcast(pm)
		}
	}
}

func (c *client) writer() {
	defer c.conn.Close()
	for {
		select {
		case pm := <-c.prices:
			if c.conn.WritePreparedMessage(pm) != nil {
				return
			}
		case <-c.pongs:
			if c.conn.WriteMessage(websocket.TextMessage, pong) != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

func main() {
	api := strings.TrimRight(env("KUCOIN_API_URL", "http://127.0.0.1:9000"), "/")
	symbol := strings.TrimSpace(strings.Split(env("SYMBOLS", "PLGR-USDT"), ",")[0])
	heartbeat, _ := strconv.ParseFloat(env("HEARTBEAT_TIMEOUT", "20"), 64)
	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true }}
	go feed(api, symbol)
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{conn: conn, prices: make(chan *websocket.PreparedMessage, 1), pongs: make(chan struct{}, 64), done: make(chan struct{})}
		mu.Lock()
		if latest != nil {
			c.prices <- latest
		}
		clients[c] = struct{}{}
		mu.Unlock()
		go c.writer()
		defer func() {
			mu.Lock()
			delete(clients, c)
			mu.Unlock()
			close(c.done)
		}()
		for {
			conn.SetReadDeadline(time.Now().Add(time.Duration(heartbeat * float64(time.Second))))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return // heartbeat timeout or close (the writer goroutine owns all writes)
			}
			switch strings.TrimSpace(string(msg)) {
			case "ping", `"ping"`, `'ping'`:
				select {
				case c.pongs <- struct{}{}:
				default:
				}
			}
		}
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+env("PORT", "8003"), nil))
}
