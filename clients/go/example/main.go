// The firecrest gateway over native gRPC from Go, through Envoy.
//
//	example WORKDIR
//
// Gets a token with client credentials from the issuer, lists the systems, submits a job that
// writes into WORKDIR (a directory of the caller on the system), follows its task with
// TasksService.WatchTask to its final state and prints the job's output (StorageService.View).
// Environment (as `firecrest-stack env` prints it): F7T_TOKEN_URL, F7T_CLIENT_ID,
// F7T_CLIENT_SECRET, F7T_GRPC_TARGET (host:port of Envoy), F7T_SYSTEM (optional: default the
// first system listed).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	computev1 "firecrest-gateway/clients/go/gen/firecrest/compute/v1"
	statusv1 "firecrest-gateway/clients/go/gen/firecrest/status/v1"
	storagev1 "firecrest-gateway/clients/go/gen/firecrest/storage/v1"
	tasksv1 "firecrest-gateway/clients/go/gen/firecrest/tasks/v1"
)

const script = "#!/bin/bash\necho \"hello from the go example, job $SLURM_JOB_ID\"\n"

func env(name string) string {
	value := os.Getenv(name)
	if value == "" {
		fail(fmt.Errorf("%s is not set", name))
	}
	return value
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func clientCredentialsToken(tokenURL, clientID, clientSecret string) (string, error) {
	r, err := http.PostForm(tokenURL, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret},
	})
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(r.Body)
		return "", fmt.Errorf("token endpoint answered %d: %s", r.StatusCode, body)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(r.Body).Decode(&token)
	return token.AccessToken, err
}

func requestID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		fail(err)
	}
	return hex.EncodeToString(b)
}

// jobTaskID finds the task of a submission: every job is a task of kind "job" whose metadata
// names the job.
func jobTaskID(ctx context.Context, tasks tasksv1.TasksServiceClient, jobID string) (string, error) {
	pageToken := ""
	for {
		page, err := tasks.ListTasks(ctx, &tasksv1.ListTasksRequest{Kind: "job", PageSize: 100, PageToken: pageToken})
		if err != nil {
			return "", err
		}
		for _, t := range page.Tasks {
			if t.GetMetadata().GetFields()["jobId"].GetStringValue() == jobID {
				return t.Id, nil
			}
		}
		if pageToken = page.NextPageToken; pageToken == "" {
			return "", fmt.Errorf("no task for job %s", jobID)
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: %s WORKDIR", os.Args[0]))
	}
	workdir := strings.TrimRight(os.Args[1], "/")
	token, err := clientCredentialsToken(env("F7T_TOKEN_URL"), env("F7T_CLIENT_ID"), env("F7T_CLIENT_SECRET"))
	if err != nil {
		fail(err)
	}
	// the token travels as call metadata; Envoy checks it on every call
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	// plaintext h2c to the local Envoy; a centre's Envoy with TLS takes
	// grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")) instead.
	// (WithInsecure: Debian's grpc-go 1.33 predates credentials/insecure.)
	conn, err := grpc.Dial(env("F7T_GRPC_TARGET"), grpc.WithInsecure())
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	status := statusv1.NewStatusServiceClient(conn)
	compute := computev1.NewComputeServiceClient(conn)
	tasks := tasksv1.NewTasksServiceClient(conn)
	storage := storagev1.NewStorageServiceClient(conn)

	systems, err := status.ListSystems(ctx, &statusv1.ListSystemsRequest{})
	if err != nil {
		fail(err)
	}
	names := []string{}
	for _, s := range systems.Systems {
		names = append(names, s.Name)
	}
	fmt.Println("systems:", strings.Join(names, " "))
	system := os.Getenv("F7T_SYSTEM")
	if system == "" {
		system = names[0]
	}

	stdout := workdir + "/go-example-%j.out"
	// RequestId makes the submission idempotent: a retry with the same id returns the same job
	submitted, err := compute.SubmitJob(ctx, &computev1.SubmitJobRequest{
		SystemName: system,
		RequestId:  requestID(),
		Job: &computev1.JobDescription{
			Name: "go-example", WorkingDirectory: workdir, Script: script, StandardOutput: stdout,
		},
	})
	if err != nil {
		fail(err)
	}
	fmt.Println("job:", submitted.JobId)

	taskID, err := jobTaskID(ctx, tasks, submitted.JobId)
	if err != nil {
		fail(err)
	}
	stream, err := tasks.WatchTask(ctx, &tasksv1.WatchTaskRequest{TaskId: taskID})
	if err != nil {
		fail(err)
	}
	var last *tasksv1.Task
	for {
		change, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
		}
		last = change.Task
		fmt.Println("task:", taskID, last.State)
	}
	if last.GetState() != tasksv1.TaskState_TASK_STATE_SUCCEEDED {
		fmt.Fprintln(os.Stderr, "the job did not succeed:", last)
		os.Exit(1)
	}

	view, err := storage.View(ctx, &storagev1.ViewRequest{
		SystemName: system, Path: strings.ReplaceAll(stdout, "%j", submitted.JobId),
	})
	if err != nil {
		fail(err)
	}
	fmt.Println("output:", strings.TrimSuffix(view.Output, "\n"))
}
