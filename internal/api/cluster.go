package api

import (
	"context"
	"net/http"

	"github.com/roostmq/roost/internal/cluster"
)

// ClusterAdmin is the membership side of the cluster, as the API needs it.
type ClusterAdmin interface {
	Status(ctx context.Context) []cluster.MemberStatus
	Join(ctx context.Context, addr string) error
	Leave(ctx context.Context) error
	ForceLeave(ctx context.Context, node string) error
}

// ClusterJoinRequest is the body of POST /api/v1/cluster/join.
type ClusterJoinRequest struct {
	Address string `json:"address"` // cluster address (host:port) of any member
}

// ClusterForceLeaveRequest is the body of POST /api/v1/cluster/force-leave.
type ClusterForceLeaveRequest struct {
	Node string `json:"node"` // name, node id or address of the member
}

func (s *Server) clusterRoutes() {
	if s.opts.Cluster == nil {
		return
	}
	s.Handle("GET /api/v1/cluster", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": s.opts.Cluster.Status(r.Context())})
		return nil
	})
	s.Handle("POST /api/v1/cluster/join", func(w http.ResponseWriter, r *http.Request) error {
		var req ClusterJoinRequest
		if err := decode(w, r, 1<<16, &req); err != nil {
			return err
		}
		if req.Address == "" {
			return fieldError("address", "required: the cluster address (host:port) of a member")
		}
		if err := s.opts.Cluster.Join(r.Context(), req.Address); err != nil {
			return errorf(http.StatusConflict, CodeConflict, "%v", err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"nodes": s.opts.Cluster.Status(r.Context())})
		return nil
	})
	s.Handle("POST /api/v1/cluster/leave", func(w http.ResponseWriter, r *http.Request) error {
		if err := s.opts.Cluster.Leave(r.Context()); err != nil {
			return errorf(http.StatusConflict, CodeConflict, "%v", err)
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "left"})
		return nil
	})
	s.Handle("POST /api/v1/cluster/force-leave", func(w http.ResponseWriter, r *http.Request) error {
		var req ClusterForceLeaveRequest
		if err := decode(w, r, 1<<16, &req); err != nil {
			return err
		}
		if req.Node == "" {
			return fieldError("node", "required: the name, node id or address of the member to remove")
		}
		if err := s.opts.Cluster.ForceLeave(r.Context(), req.Node); err != nil {
			return errorf(http.StatusConflict, CodeConflict, "%v", err)
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "removed"})
		return nil
	})
}
