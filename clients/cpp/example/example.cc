// The firecrest gateway over native gRPC from C++, through Envoy.
//
//     example WORKDIR
//
// Gets a token with client credentials from the issuer, lists the systems, submits a job that
// writes into WORKDIR (a directory of the caller on the system), follows its task with
// TasksService.WatchTask to its final state and prints the job's output (StorageService.View).
// Environment (as `firecrest-stack env` prints it): F7T_TOKEN_URL, F7T_CLIENT_ID,
// F7T_CLIENT_SECRET, F7T_GRPC_TARGET (host:port of Envoy), F7T_SYSTEM (optional: default the
// first system listed).
#include <curl/curl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "firecrest/compute/v1/compute.grpc.pb.h"
#include "firecrest/status/v1/status.grpc.pb.h"
#include "firecrest/storage/v1/storage.grpc.pb.h"
#include "firecrest/tasks/v1/tasks.grpc.pb.h"

namespace compute = firecrest::compute::v1;
namespace status = firecrest::status::v1;
namespace storage = firecrest::storage::v1;
namespace tasks = firecrest::tasks::v1;

namespace {

const char kScript[] = "#!/bin/bash\necho \"hello from the c++ example, job $SLURM_JOB_ID\"\n";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') throw std::runtime_error(std::string(name) + " is not set");
  return value;
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string ClientCredentialsToken(const std::string& url, const std::string& id, const std::string& secret) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw std::runtime_error("curl_easy_init failed");
  auto escape = [curl](const std::string& s) {
    char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
    std::string out(e);
    curl_free(e);
    return out;
  };
  std::string form = "grant_type=client_credentials&client_id=" + escape(id) + "&client_secret=" + escape(secret);
  std::string body;
  long code = 0;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) throw std::runtime_error(std::string("token request failed: ") + curl_easy_strerror(rc));
  if (code != 200) throw std::runtime_error("token endpoint answered " + std::to_string(code) + ": " + body);
  // protobuf's JSON parser reads the answer into a google.protobuf.Struct
  google::protobuf::Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(body, &answer).ok()) {
    throw std::runtime_error("token endpoint answered no JSON: " + body);
  }
  return answer.fields().at("access_token").string_value();
}

std::string RequestId() {
  std::random_device rd;
  std::string id;
  const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) id += hex[rd() % 16];
  return id;
}

void Check(const grpc::Status& s, const std::string& what) {
  if (!s.ok()) throw std::runtime_error(what + ": " + std::to_string(s.error_code()) + " " + s.error_message());
}

}  // namespace

int Run(const std::string& workdir) {
  const std::string token = ClientCredentialsToken(Env("F7T_TOKEN_URL"), Env("F7T_CLIENT_ID"), Env("F7T_CLIENT_SECRET"));
  // the token travels as call metadata, on each call's context; Envoy checks it on every call
  auto context = [&token](grpc::ClientContext& ctx) { ctx.AddMetadata("authorization", "Bearer " + token); };
  auto channel = grpc::CreateChannel(Env("F7T_GRPC_TARGET"), grpc::InsecureChannelCredentials());
  auto status_client = status::StatusService::NewStub(channel);
  auto compute_client = compute::ComputeService::NewStub(channel);
  auto tasks_client = tasks::TasksService::NewStub(channel);
  auto storage_client = storage::StorageService::NewStub(channel);

  status::ListSystemsResponse systems;
  {
    grpc::ClientContext ctx;
    context(ctx);
    Check(status_client->ListSystems(&ctx, status::ListSystemsRequest(), &systems), "ListSystems");
  }
  std::cout << "systems:";
  for (const auto& s : systems.systems()) std::cout << " " << s.name();
  std::cout << std::endl;
  const char* chosen = std::getenv("F7T_SYSTEM");
  const std::string system = chosen != nullptr && *chosen != '\0' ? chosen : systems.systems(0).name();

  const std::string stdout_path = workdir + "/cpp-example-%j.out";
  compute::SubmitJobRequest submit;
  submit.set_system_name(system);
  // request_id makes the submission idempotent: a retry with the same id returns the same job
  submit.set_request_id(RequestId());
  compute::JobDescription* job = submit.mutable_job();
  job->set_name("cpp-example");
  job->set_working_directory(workdir);
  job->set_script(kScript);
  job->set_standard_output(stdout_path);
  compute::SubmitJobResponse submitted;
  {
    grpc::ClientContext ctx;
    context(ctx);
    Check(compute_client->SubmitJob(&ctx, submit, &submitted), "SubmitJob");
  }
  const std::string job_id = submitted.job_id();
  std::cout << "job: " << job_id << std::endl;

  // every submission is a task of kind "job" whose metadata names the job: find it
  std::string task_id;
  tasks::ListTasksRequest list;
  list.set_kind("job");
  list.set_page_size(100);
  while (task_id.empty()) {
    tasks::ListTasksResponse page;
    grpc::ClientContext ctx;
    context(ctx);
    Check(tasks_client->ListTasks(&ctx, list, &page), "ListTasks");
    for (const auto& t : page.tasks()) {
      auto it = t.metadata().fields().find("jobId");
      if (it != t.metadata().fields().end() && it->second.string_value() == job_id) task_id = t.id();
    }
    if (task_id.empty() && page.next_page_token().empty()) throw std::runtime_error("no task for job " + job_id);
    list.set_page_token(page.next_page_token());
  }

  tasks::WatchTaskRequest watch;
  watch.set_task_id(task_id);
  tasks::WatchTaskResponse change;
  tasks::Task last;
  {
    grpc::ClientContext ctx;
    context(ctx);
    auto reader = tasks_client->WatchTask(&ctx, watch);
    while (reader->Read(&change)) {
      last = change.task();
      std::cout << "task: " << task_id << " " << tasks::TaskState_Name(last.state()) << std::endl;
    }
    Check(reader->Finish(), "WatchTask");
  }
  if (last.state() != tasks::TASK_STATE_SUCCEEDED) {
    std::cerr << "the job did not succeed: " << last.DebugString() << std::endl;
    return 1;
  }

  storage::ViewRequest view_request;
  view_request.set_system_name(system);
  std::string path = stdout_path;
  path.replace(path.find("%j"), 2, job_id);
  view_request.set_path(path);
  storage::ViewResponse view;
  {
    grpc::ClientContext ctx;
    context(ctx);
    Check(storage_client->View(&ctx, view_request, &view), "View");
  }
  std::string output = view.output();
  if (!output.empty() && output.back() == '\n') output.pop_back();
  std::cout << "output: " << output << std::endl;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " WORKDIR" << std::endl;
    return 2;
  }
  std::string workdir = argv[1];
  while (workdir.size() > 1 && workdir.back() == '/') workdir.pop_back();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 1;
  try {
    rc = Run(workdir);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
  }
  curl_global_cleanup();
  return rc;
}
